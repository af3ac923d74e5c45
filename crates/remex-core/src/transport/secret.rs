//! Shared secrets for `socket=` sessions: read from a file or an
//! environment variable, refused when weak or readable by others, and held
//! in memory that is zeroed when dropped.
//!
//! The rule, the same on both ends (the controller's `secret_file=` and
//! `secret_env=`, the listener's `--secret-file` and `--secret-env`):
//!
//! - trailing newlines are dropped (`echo` adds one);
//! - the rest must carry 128 bits at least as it is written: 32 hex digits
//!   or more when it is all hex, otherwise 22 characters or more (16
//!   random bytes in base64), and not a single character repeated;
//! - a file must belong to this user (or root) and be readable by nobody
//!   else (`chmod 600`), as ssh requires of private keys.
//!
//! `head -c 32 /dev/urandom | base64 > secret; chmod 600 secret` makes a
//! good one. `installvia=` and dial-back make 256-bit secrets themselves.

use zeroize::Zeroizing;

/// A secret's bytes, zeroed when dropped.
pub type Secret = Zeroizing<Vec<u8>>;

/// The fewest hex digits a secret written in hex may have (128 bits).
///
/// ```
/// assert_eq!(remex::core::transport::secret::MIN_HEX_DIGITS, 32);
/// ```
pub const MIN_HEX_DIGITS: usize = 32;

/// The fewest characters any other secret may have (16 bytes in base64).
///
/// ```
/// assert_eq!(remex::core::transport::secret::MIN_CHARS, 22);
/// ```
pub const MIN_CHARS: usize = 22;

/// Drops trailing newlines, then checks the rule of this module; `origin`
/// names where the secret came from in the error.
///
/// ```
/// use remex::core::transport::secret::check;
/// assert!(check(b"0123456789abcdef0123456789abcdef\n", "f").is_ok());
/// assert!(check(b"6aNqz7Y0mFz+u1yQ2w3e4Q==", "f").is_ok());
/// let e = check(b"\n", "secret_file=/s").unwrap_err();
/// assert!(e.contains("secret_file=/s") && e.contains("empty"), "{e}");
/// assert!(check(b"deadbeef", "f").unwrap_err().contains("32 hex digits"));
/// assert!(check(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "f").is_err());
/// ```
pub fn check(secret: &[u8], origin: &str) -> Result<usize, String> {
    let mut len = secret.len();
    while len > 0 && matches!(secret[len - 1], b'\n' | b'\r') {
        len -= 1;
    }
    let s = &secret[..len];
    let rule = format!(
        "a secret needs 128 bits: {MIN_HEX_DIGITS} hex digits or more, or {MIN_CHARS} characters or more (head -c 32 /dev/urandom | base64)"
    );
    if s.is_empty() {
        return Err(format!("{origin}: the secret is empty; {rule}"));
    }
    let hex = s.iter().all(u8::is_ascii_hexdigit);
    if hex && s.len() < MIN_HEX_DIGITS {
        return Err(format!(
            "{origin}: the secret is {} hex digits; {rule}",
            s.len()
        ));
    }
    if !hex && s.len() < MIN_CHARS {
        return Err(format!(
            "{origin}: the secret is {} characters; {rule}",
            s.len()
        ));
    }
    if s.iter().all(|b| *b == s[0]) {
        return Err(format!(
            "{origin}: the secret is one character repeated; {rule}"
        ));
    }
    Ok(len)
}

/// Reads a secret file, refusing one that others may read or that
/// belongs to someone else, and checks the secret ([`check`]).
///
/// ```
/// use std::os::unix::fs::PermissionsExt;
/// let dir = std::env::temp_dir().join(format!("remex-secret-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("s");
/// std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").unwrap();
/// std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
/// let e = remex::core::transport::secret::from_file(path.to_str().unwrap(), "secret_file").unwrap_err();
/// assert!(e.contains("chmod 600"), "{e}");
/// std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
/// let s = remex::core::transport::secret::from_file(path.to_str().unwrap(), "secret_file").unwrap();
/// assert_eq!(s.len(), 32, "without the newline");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn from_file(path: &str, key: &str) -> Result<Secret, String> {
    use std::os::unix::fs::MetadataExt;
    let origin = format!("{key}={path}");
    let md = std::fs::metadata(path).map_err(|e| format!("{origin}: {e}"))?;
    let mode = md.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{origin}: the file may be read by group or others (mode {mode:03o}): chmod 600 {path}, as ssh requires of keys"
        ));
    }
    let me = rustix::process::getuid().as_raw();
    if md.uid() != me && md.uid() != 0 {
        return Err(format!(
            "{origin}: the file belongs to uid {}, not to this user ({me}) nor root",
            md.uid()
        ));
    }
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| format!("{origin}: {e}"))?);
    let len = check(&bytes, &origin)?;
    Ok(Zeroizing::new(bytes[..len].to_vec()))
}

/// Reads a secret from the environment variable `name` and checks it
/// ([`check`]); the variable is not removed (the caller decides).
///
/// ```
/// let e = remex::core::transport::secret::from_env("REMEX_DOC_NO_SUCH_VARIABLE", "secret_env").unwrap_err();
/// assert!(e.contains("not set"), "{e}");
/// ```
pub fn from_env(name: &str, key: &str) -> Result<Secret, String> {
    let origin = format!("{key}={name}");
    let value = Zeroizing::new(
        std::env::var_os(name)
            .ok_or_else(|| format!("{origin}: the variable is not set"))?
            .into_encoded_bytes(),
    );
    let len = check(&value, &origin)?;
    Ok(Zeroizing::new(value[..len].to_vec()))
}

/// Removes from `cmd`'s environment every variable noted as holding a
/// secret (a `secret_env=` of a spec this process parsed): workers, their
/// scripts, wrappers (srun, and so every node of a
/// step) and ssh never see the controller's secrets.
pub(crate) fn scrub(cmd: &mut std::process::Command) {
    for name in crate::spec::secret_env_names() {
        cmd.env_remove(name);
    }
}
