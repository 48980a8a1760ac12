//! The `swarm-node` command line: parses the arguments and hands each subcommand to its module in
//! `commands/` (the options several subcommands share are in `args.rs`).

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

mod args;
mod commands;

use args::{Cli, Command};
use commands::config::ConfigAction;

fn main() -> ExitCode {
    swarm_node::compute::keep_tensor_buffers();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped early (`swarm-node man | head`) is not a failure.
        Err(err)
            if err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let Cli { leading, command } = cli;
    let command = match command {
        Command::Simulate(args) => return commands::simulate::run(args, leading),
        Command::Completions { shell } => {
            let mut cli = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cli, "swarm-node", &mut std::io::stdout());
            return Ok(());
        }
        Command::Man => {
            let cli = <Cli as clap::CommandFactory>::command();
            return Ok(clap_mangen::Man::new(cli).render(&mut std::io::stdout())?);
        }
        command => command,
    };
    let config = commands::load_config(&command, leading)?;
    match command {
        Command::Identity(_) => commands::identity::run(&config),
        Command::Status(args) => commands::status::run(&args, &config),
        Command::Warmup(args) => commands::warmup::run(args, &config),
        Command::Train(args) => commands::train::run(&args, &config),
        Command::Join(args) => commands::join::join(&args, &config),
        Command::Bootstrap(_) => commands::join::bootstrap(&config),
        Command::Eval(args) => commands::eval::run(args, &config),
        Command::Logprobs(args) => commands::logprobs::run(&args, &config),
        Command::Bench(args) => commands::bench::run(&args, &config),
        Command::Tasks { action } => commands::tasks::run(&action, &config),
        Command::Config {
            action: ConfigAction::Show { .. },
        } => commands::config::show(&config),
        Command::Simulate(_) | Command::Completions { .. } | Command::Man => {
            unreachable!("handled before the configuration is loaded")
        }
    }
}
