//! The node's long-lived identity: one ed25519 seed that yields both the rollout signing key and the
//! libp2p peer id, so a bundle's author and the peer that gossips it are provably the same party.
//!
//! The seed lives in `<data-dir>/identity.key` as one line of text:
//! `swarm-identity-v1 <64 hex chars of seed> <8 hex chars of checksum>`, where the checksum is the first four
//! bytes of blake3(seed). Text (not raw bytes) so an operator can back it up by copy-paste; the checksum so a
//! damaged file is reported instead of silently yielding a different identity.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ed25519_dalek::SigningKey;
use rand::RngCore;

/// File name of the identity seed inside the data directory.
pub const IDENTITY_FILE: &str = "identity.key";
const FORMAT_TAG: &str = "swarm-identity-v1";

/// A loaded identity. The seed is kept private; callers get the derived keys.
pub struct Identity {
    seed: [u8; 32],
    path: PathBuf,
    created: bool,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the seed, even in debug output.
        f.debug_struct("Identity")
            .field("public_key", &self.public_key_hex())
            .field("path", &self.path)
            .finish()
    }
}

impl Identity {
    /// Loads the identity from `data_dir`, creating a new random one (mode 0600) if none exists yet.
    ///
    /// An existing file that is unreadable, malformed, truncated, fails its checksum or is readable by
    /// group or others is an error: replacing it would silently change who this node is.
    pub fn load_or_create(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(IDENTITY_FILE);
        if let Ok(link) = fs::read_link(&path)
            && !path.exists()
        {
            bail!(
                "identity file {} is a symbolic link to {}, which does not exist; restore the file \
                 it points to, or remove the link to start with a new identity",
                path.display(),
                link.display()
            );
        }
        if path.exists() {
            return Self::load(&path);
        }
        create_private_dir(data_dir)?;
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        // Written whole under another name and linked into place: a crash never leaves an empty or
        // partial key, and an identity that appeared meanwhile is never replaced.
        swarm_policy::durable::create_new_file(&path, encode_seed(&seed).as_bytes(), 0o600)
            .with_context(|| format!("cannot create identity file {}", path.display()))?;
        Ok(Self {
            seed,
            path,
            created: true,
        })
    }

    /// Loads an existing identity file, with the checks described on [`Identity::load_or_create`].
    pub fn load(path: &Path) -> Result<Self> {
        let metadata = fs::metadata(path)
            .with_context(|| format!("cannot read identity file {}", path.display()))?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "identity file {} has mode {mode:03o}: it holds this node's private key and must be readable \
                 by its owner only; run `chmod 600 {}` and start again",
                path.display(),
                path.display()
            );
        }
        let text = fs::read_to_string(path)
            .with_context(|| format!("cannot read identity file {}", path.display()))?;
        let seed = decode_seed(&text).with_context(|| {
            format!(
                "identity file {} is damaged; restore it from a backup, or move it away to start \
                 with a new identity (peers will see a different node)",
                path.display()
            )
        })?;
        Ok(Self {
            seed,
            path: path.to_owned(),
            created: false,
        })
    }

    /// Builds an identity from a known seed without touching the disk (simulations and tests).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            seed,
            path: PathBuf::new(),
            created: false,
        }
    }

    /// The 32-byte seed, for handing to the network layer, which derives the libp2p keypair from it.
    pub fn seed(&self) -> [u8; 32] {
        self.seed
    }

    /// Where the identity is stored (empty for in-memory identities).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this call created the identity file.
    pub fn was_created(&self) -> bool {
        self.created
    }

    /// The key that signs this node's rollout bundles.
    pub fn signing_key(&self) -> SigningKey {
        SigningKey::from_bytes(&self.seed)
    }

    /// The ed25519 public key as lowercase hex: the author id inside rollout bundles.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.signing_key().verifying_key().to_bytes())
    }

    /// The libp2p peer id derived from the same key.
    pub fn peer_id(&self) -> libp2p::PeerId {
        self.libp2p_keypair().public().to_peer_id()
    }

    /// The libp2p keypair derived from the same seed.
    pub fn libp2p_keypair(&self) -> libp2p::identity::Keypair {
        let mut seed = self.seed;
        libp2p::identity::Keypair::ed25519_from_bytes(&mut seed)
            .expect("a 32-byte slice is always a valid ed25519 secret key")
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        return Ok(());
    }
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict permissions of {}", dir.display()))
}

fn checksum(seed: &[u8; 32]) -> String {
    hex::encode(&blake3::hash(seed).as_bytes()[..4])
}

fn encode_seed(seed: &[u8; 32]) -> String {
    format!("{FORMAT_TAG} {} {}\n", hex::encode(seed), checksum(seed))
}

fn decode_seed(text: &str) -> Result<[u8; 32]> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [tag, seed_hex, sum] = fields.as_slice() else {
        bail!(
            "expected `{FORMAT_TAG} <seed hex> <checksum hex>`, found {} field(s)",
            fields.len()
        );
    };
    if *tag != FORMAT_TAG {
        bail!("unknown identity format `{tag}` (this build reads `{FORMAT_TAG}`)");
    }
    let bytes = hex::decode(seed_hex).context("the seed is not valid hex")?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| anyhow::anyhow!("the seed has {} bytes, expected 32", b.len()))?;
    if checksum(&seed) != *sum {
        bail!("the checksum does not match the seed");
    }
    Ok(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_mode(path: &Path, text: &str, mode: u32) {
        fs::write(path, text).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn creates_then_reloads_the_same_identity_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = Identity::load_or_create(&data).unwrap();
        assert!(first.was_created());
        let mode = fs::metadata(data.join(IDENTITY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = Identity::load_or_create(&data).unwrap();
        assert!(!second.was_created());
        assert_eq!(first.public_key_hex(), second.public_key_hex());
        assert_eq!(first.peer_id(), second.peer_id());
    }

    #[test]
    fn peer_id_and_signing_key_come_from_one_seed() {
        let identity = Identity::from_seed([7; 32]);
        let libp2p_public = identity
            .libp2p_keypair()
            .public()
            .try_into_ed25519()
            .unwrap()
            .to_bytes();
        assert_eq!(
            libp2p_public,
            identity.signing_key().verifying_key().to_bytes()
        );
    }

    #[test]
    fn a_dangling_link_is_named_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(IDENTITY_FILE);
        std::os::unix::fs::symlink(dir.path().join("backup/identity.key"), &path).unwrap();
        let err = format!("{:#}", Identity::load_or_create(dir.path()).unwrap_err());
        assert!(
            err.contains("symbolic link") && err.contains("backup/identity.key"),
            "{err}"
        );
        assert!(fs::read_link(&path).is_ok(), "the link is kept");
        assert!(
            !dir.path().join("backup").exists(),
            "its target is not created"
        );
    }

    #[test]
    fn damaged_files_are_errors_not_new_identities() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(IDENTITY_FILE);
        let good = encode_seed(&[3; 32]);
        let cases = [
            ("truncated", good[..40].to_string()),
            ("empty", String::new()),
            ("flipped seed digit", good.replacen("0303", "0304", 1)),
            ("wrong tag", good.replace(FORMAT_TAG, "swarm-identity-v9")),
            ("not hex", good.replacen("03", "zz", 1)),
        ];
        for (what, text) in cases {
            write_mode(&path, &text, 0o600);
            let err = Identity::load_or_create(dir.path()).unwrap_err();
            let message = format!("{err:#}");
            assert!(message.contains("damaged"), "{what}: {message}");
            assert_eq!(
                fs::read_to_string(&path).unwrap(),
                text,
                "{what}: file must be left as it was"
            );
        }
    }

    #[test]
    fn world_or_group_readable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(IDENTITY_FILE);
        for mode in [0o644, 0o640, 0o604] {
            write_mode(&path, &encode_seed(&[1; 32]), mode);
            let message = format!("{:#}", Identity::load_or_create(dir.path()).unwrap_err());
            assert!(message.contains("chmod 600"), "{mode:o}: {message}");
        }
    }
}
