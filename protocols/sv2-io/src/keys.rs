//! Authority keys in SRI's string format, generated on first run into the data directory.
//!
//! Secret: base58check of the 32 key bytes. Public: base58check of `[0x01, 0x00] ‖ x-only key`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use stratum_core::bitcoin::base58;
use stratum_core::bitcoin::secp256k1::{Keypair, Secp256k1, SecretKey, XOnlyPublicKey};

/// Errors reading or creating key files.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading/writing the key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The string is not a valid key.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// "secret key" or "public key".
        what: &'static str,
        /// Why.
        reason: String,
    },
}

/// An x-only public key that authenticates a Noise responder.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthorityPublicKey(pub [u8; 32]);

impl fmt::Display for AuthorityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut v = vec![0x01, 0x00];
        v.extend_from_slice(&self.0);
        f.write_str(&base58::encode_check(&v))
    }
}

impl fmt::Debug for AuthorityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthorityPublicKey({self})")
    }
}

impl FromStr for AuthorityPublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let invalid = |reason: String| KeyError::Invalid {
            what: "public key",
            reason,
        };
        let v = base58::decode_check(s.trim()).map_err(|e| invalid(e.to_string()))?;
        if v.len() != 34 || v[0] != 0x01 || v[1] != 0x00 {
            return Err(invalid("expected version 1 and 32 key bytes".into()));
        }
        let mut k = [0u8; 32];
        k.copy_from_slice(&v[2..]);
        XOnlyPublicKey::from_slice(&k).map_err(|e| invalid(e.to_string()))?;
        Ok(Self(k))
    }
}

/// A responder's authority keypair.
#[derive(Clone)]
pub struct AuthorityKeypair {
    secret: [u8; 32],
    public: AuthorityPublicKey,
}

impl fmt::Debug for AuthorityKeypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthorityKeypair(public: {})", self.public)
    }
}

impl AuthorityKeypair {
    /// A fresh random keypair.
    pub fn generate() -> Self {
        let secp = Secp256k1::new();
        loop {
            let bytes: [u8; 32] = rand::random();
            // Fails only for zero or >= the curve order: negligible, but retry rather than panic.
            if let Ok(sk) = SecretKey::from_slice(&bytes) {
                return Self::from_secret(&secp, sk);
            }
        }
    }

    fn from_secret(secp: &Secp256k1<stratum_core::bitcoin::secp256k1::All>, sk: SecretKey) -> Self {
        let (xonly, _) = sk.x_only_public_key(secp);
        Self {
            secret: sk.secret_bytes(),
            public: AuthorityPublicKey(xonly.serialize()),
        }
    }

    /// Parses the SRI secret-key string.
    pub fn from_secret_str(s: &str) -> Result<Self, KeyError> {
        let invalid = |reason: String| KeyError::Invalid {
            what: "secret key",
            reason,
        };
        let v = base58::decode_check(s.trim()).map_err(|e| invalid(e.to_string()))?;
        let sk = SecretKey::from_slice(&v).map_err(|e| invalid(e.to_string()))?;
        Ok(Self::from_secret(&Secp256k1::new(), sk))
    }

    /// The SRI secret-key string (write it only to 0600 files).
    pub fn secret_string(&self) -> String {
        base58::encode_check(&self.secret)
    }

    /// Reads the key at `path`, or creates it (mode 0600) if the file does not exist.
    pub fn load_or_generate(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(s) => Self::from_secret_str(&s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let kp = Self::generate();
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                write_private(path, &kp.secret_string()).map_err(io)?;
                Ok(kp)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The public half.
    pub fn public(&self) -> AuthorityPublicKey {
        self.public
    }

    /// Raw secret bytes, for the Noise responder and BIP340 signing.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.secret
    }

    /// The keypair as a `bitcoin` secp256k1 keypair (for BIP340 signatures).
    pub fn keypair(&self) -> Result<Keypair, KeyError> {
        let secp = Secp256k1::new();
        Keypair::from_seckey_slice(&secp, &self.secret).map_err(|e| KeyError::Invalid {
            what: "secret key",
            reason: e.to_string(),
        })
    }
}

/// Writes `contents` to a new file readable only by its owner.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_strings_round_trip() {
        let kp = AuthorityKeypair::generate();
        let back = AuthorityKeypair::from_secret_str(&kp.secret_string()).unwrap();
        assert_eq!(back.public(), kp.public());
        let pk: AuthorityPublicKey = kp.public().to_string().parse().unwrap();
        assert_eq!(pk, kp.public());
        assert!("garbage".parse::<AuthorityPublicKey>().is_err());
    }

    #[test]
    fn sri_example_public_key_parses() {
        // The example authority key from SRI's configs.
        let pk: AuthorityPublicKey = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72"
            .parse()
            .unwrap();
        assert_eq!(
            pk.to_string(),
            "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72"
        );
    }

    #[test]
    fn generated_file_is_private_and_stable() {
        let dir = std::env::temp_dir().join(format!("sv2io-key-{}", rand::random::<u64>()));
        let path = dir.join("authority.key");
        let a = AuthorityKeypair::load_or_generate(&path).unwrap();
        let b = AuthorityKeypair::load_or_generate(&path).unwrap();
        assert_eq!(a.public(), b.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
