//! Prometheus export of the node status: read from the [`StatusBoard`] at scrape time, so the learner and
//! network keep one source of truth and no counters are kept twice.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::status::StatusBoard;

/// Registers the node's own metrics (prefixed `swarm_`) in `registry`.
pub fn register_status_metrics(registry: &mut Registry, board: Arc<StatusBoard>) {
    registry.register_collector(Box::new(StatusCollector { board }));
}

#[derive(Debug)]
struct StatusCollector {
    board: Arc<StatusBoard>,
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for StatusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let status = self.board.snapshot();
        gauge(
            &mut encoder,
            "swarm_uptime",
            "Time since the node started.",
            Some(&Unit::Seconds),
            status.uptime_seconds as f64,
        )?;
        gauge(
            &mut encoder,
            "swarm_round",
            "Learner rounds completed.",
            None,
            status.round as f64,
        )?;
        gauge(
            &mut encoder,
            "swarm_policy_version",
            "Optimizer steps taken by the local policy.",
            None,
            status.policy_version as f64,
        )?;
        gauge(
            &mut encoder,
            "swarm_peers",
            "Connected peers.",
            None,
            status.peers as f64,
        )?;
        if let Some(reward) = status.last_reward {
            gauge(
                &mut encoder,
                "swarm_last_round_reward",
                "Mean reward of the last round's own completions.",
                None,
                reward,
            )?;
        }
        if let Some(rate) = status.tokens_per_second {
            gauge(
                &mut encoder,
                "swarm_sampling_tokens_per_second",
                "Sampling throughput of the last round.",
                None,
                rate,
            )?;
        }
        counter(
            &mut encoder,
            "swarm_bundles_published",
            "Rollout bundles this node published.",
            status.bundles_published,
        )?;
        counter(
            &mut encoder,
            "swarm_bundles_accepted",
            "External rollout bundles accepted from the network.",
            status.bundles_accepted,
        )?;
        let family = encoder.encode_descriptor(
            "swarm_gossip_validation",
            "Gossip messages by validation outcome and reason.",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        let mut family = family;
        for (key, count) in &status.validation {
            let (outcome, reason) = key.split_once('.').unwrap_or((key.as_str(), ""));
            let labels = [("outcome", outcome), ("reason", reason)];
            ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
