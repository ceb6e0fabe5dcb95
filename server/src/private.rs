//! Files and folders only their owner may read: the data dir (the database holds the token and
//! ticket signing keys and the credentials' hashes) and the TLS folder (the authority's key).

use std::path::Path;

use anyhow::Context;

/// Creates the data dir readable by its owner only (0700), or makes an existing one so: it
/// holds the database (the token-signing key, the ticket key, hashes) and the authority's key.
pub fn make_private_dir(dir: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private (0700)", dir.display()))?;
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(())
}

/// Creates the database file readable by its owner only (0600), or makes an existing one so;
/// SQLite gives its `-wal` and `-shm` files the database's own mode.
pub fn make_private_file(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} private (0600)", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
