//! How an upload lies on disk: its files under `<data dir>/models/<id>/` with their own names,
//! checked so none can escape the folder, `id` a hash of them all, each written atomically.
//!
//! An upload is received straight into a staging folder of its own ([`Staging`]), a chunk at a
//! time, so the coordinator holds a few KiB of it at once however big it is; the folder becomes
//! the model's, or is removed, once the upload is checked.
//!
//! Replicas may share one models folder (a shared volume in a cluster). What one of them is
//! doing there (receiving an upload, converting a model) it holds a [`Claim`] on, so another
//! neither removes it nor does it twice.

use std::io::Read;
use std::path::{Path, PathBuf};

use parallax_core::ModelId;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// Uploads are limited to this by default (`--max-upload-mb`).
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 256 * 1024 * 1024;

/// The thumbnail's file name in a model's folder.
pub const THUMBNAIL: &str = "thumbnail.png";

/// The prefix of staging folders: a stop may leave one, which the next start removes (unless a
/// replica sharing the folder still receives it: its claim says so).
pub const STAGING_PREFIX: &str = ".upload-";

/// What a claim's lock file is named after its name.
const CLAIM_SUFFIX: &str = ".lock";

/// A piece of work in the models folder that one coordinator owns while it lasts: an exclusive
/// lock on `<models>/<name>.lock`. No replica sharing the folder can take it meanwhile (shared
/// volumes such as NFSv4 and CephFS keep these locks across machines); a coordinator that stops
/// or dies lets it go.
#[derive(Debug)]
pub struct Claim {
    path: PathBuf,
    file: std::fs::File,
}

impl Claim {
    /// Takes the claim `name` in `models`; `None` while another holds it. Whoever takes a claim
    /// checks that its work is still to do: the last holder may have just finished it.
    pub fn take(models: &Path, name: &str) -> std::io::Result<Option<Self>> {
        use std::os::unix::fs::MetadataExt;
        let path = models.join(format!("{name}{CLAIM_SUFFIX}"));
        // A holder that lets go removes the file first: one locked after that is no claim, and
        // the file at the path (a new one, or none) is tried instead.
        for _ in 0..3 {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
            let locked = file.metadata()?;
            match std::fs::metadata(&path) {
                Ok(now) if (now.dev(), now.ino()) == (locked.dev(), locked.ino()) => {
                    return Ok(Some(Self { path, file }));
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// [`Claim::take`] off the async threads (a shared volume's file calls are network trips).
    pub async fn take_off_thread(models: &Path, name: String) -> std::io::Result<Option<Self>> {
        let models = models.to_path_buf();
        tokio::task::spawn_blocking(move || Self::take(&models, &name))
            .await
            .map_err(std::io::Error::other)?
    }

    /// Lets it go off the async threads (a shared volume's file calls are network trips).
    pub async fn let_go(self) {
        let _ = tokio::task::spawn_blocking(move || drop(self)).await;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Gone before it is let go, so it does not stay behind; one who opened it meanwhile
        // takes it then, and finds the work done.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// Removes the staging folders in `models` no coordinator is receiving (left by a stop), with
/// their claims' files. One it cannot look at or remove is left (and logged) for the next start.
pub fn remove_abandoned_staging(models: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(models)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let Some(staging) = name.strip_prefix(STAGING_PREFIX) else {
            continue;
        };
        let staging = staging.strip_suffix(CLAIM_SUFFIX).unwrap_or(staging);
        let name = format!("{STAGING_PREFIX}{staging}");
        let removed = Claim::take(models, &name).and_then(|claim| match claim {
            Some(_claim) => match std::fs::remove_dir_all(models.join(&name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            None => Ok(()),
        });
        if let Err(e) = removed {
            tracing::warn!(folder = %models.join(&name).display(), "an upload a stop left: {e}");
        }
    }
    Ok(())
}

/// One file of an upload, received into its staging folder.
#[derive(Debug, Clone)]
pub struct UploadedFile {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
}

/// An upload's own folder while it is received and checked: removed when dropped, unless it
/// became the model's folder ([`Staging::settle_into`]).
pub struct Staging {
    path: PathBuf,
    settled: bool,
    /// Held until the folder is the model's or removed.
    claim: Option<Claim>,
}

impl Staging {
    /// A new staging folder in `models`, claimed before it is made.
    pub async fn new(models: &Path) -> std::io::Result<Self> {
        let name = format!("{STAGING_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let claim = Claim::take_off_thread(models, name.clone())
            .await?
            .ok_or_else(|| std::io::Error::other("a new staging folder was claimed"))?;
        let path = models.join(name);
        tokio::fs::create_dir_all(&path).await?;
        Ok(Self {
            path,
            settled: false,
            claim: Some(claim),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts receiving file `name`, or `None` if it is not a plain file name or was sent
    /// already.
    pub async fn receive(&self, name: &str) -> std::io::Result<Option<Receiving>> {
        if !safe_file_name(name) {
            return Ok(None);
        }
        let path = self.path.join(name);
        let file = match tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(Receiving {
            file: tokio::io::BufWriter::new(file),
            uploaded: UploadedFile {
                name: name.to_string(),
                path,
                size: 0,
            },
        }))
    }

    /// Copies `size` bytes of the open file `from` in as `name`, file to file; `None` if
    /// `name` is not a plain file name or was copied in already, or `from` is shorter.
    pub async fn copy_in(
        &self,
        name: &str,
        from: tokio::fs::File,
        size: u64,
    ) -> std::io::Result<Option<UploadedFile>> {
        use tokio::io::AsyncReadExt;
        let Some(mut receiving) = self.receive(name).await? else {
            return Ok(None);
        };
        let mut from = from.take(size);
        let mut block = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut block).await?;
            if n == 0 {
                break;
            }
            receiving.write(&block[..n]).await?;
        }
        let copied = receiving.finish().await?;
        Ok((copied.size == size).then_some(copied))
    }

    /// Makes the staging folder `folder`, on disk before this returns; `false` (and the staging
    /// folder removed) if `folder` exists already: the same content is stored.
    pub async fn settle_into(mut self, folder: &Path) -> std::io::Result<bool> {
        tokio::fs::File::open(&self.path).await?.sync_all().await?;
        match tokio::fs::rename(&self.path, folder).await {
            Ok(()) => {}
            // A non-empty folder cannot be renamed onto: that content is stored already.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::DirectoryNotEmpty | std::io::ErrorKind::AlreadyExists
                ) && folder.is_dir() =>
            {
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
        self.settled = true;
        if let Some(claim) = self.claim.take() {
            claim.let_go().await;
        }
        sync_parent(folder).await?;
        Ok(true)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let path = std::mem::take(&mut self.path);
        let claim = self.claim.take();
        let remove = move || {
            let _ = std::fs::remove_dir_all(path);
            drop(claim);
        };
        // Off the async threads: an upload of many files takes a while to remove.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(remove);
            }
            Err(_) => remove(),
        }
    }
}

/// A file of an upload as it arrives.
pub struct Receiving {
    file: tokio::io::BufWriter<tokio::fs::File>,
    uploaded: UploadedFile,
}

impl Receiving {
    pub async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.file.write_all(chunk).await?;
        self.uploaded.size += chunk.len() as u64;
        Ok(())
    }

    /// The whole file, on disk.
    pub async fn finish(mut self) -> std::io::Result<UploadedFile> {
        self.file.flush().await?;
        self.file.get_ref().sync_all().await?;
        Ok(self.uploaded)
    }
}

/// The first `n` bytes of the file at `path` (fewer if it is shorter).
pub async fn prefix(path: &Path, n: usize) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::with_capacity(n);
    tokio::fs::File::open(path)
        .await?
        .take(n as u64)
        .read_to_end(&mut bytes)
        .await?;
    Ok(bytes)
}

pub fn is_model_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".step", ".stp", ".gltf", ".glb", ".stl", ".obj"]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

/// A plain file name: no directories, nothing hidden, nothing that could escape the folder.
pub fn safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != THUMBNAIL
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
}

/// Hash of every file's name and bytes, in name order: the same upload gives the same id. Reads
/// the files a block at a time (it blocks: run it off the async threads).
pub fn content_id(files: &[UploadedFile]) -> std::io::Result<ModelId> {
    let mut sorted: Vec<&UploadedFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut hash = Sha256::new();
    let mut block = vec![0u8; 64 * 1024];
    for file in sorted {
        hash.update((file.name.len() as u64).to_le_bytes());
        hash.update(file.name.as_bytes());
        hash.update(file.size.to_le_bytes());
        let mut reader = std::fs::File::open(&file.path)?.take(file.size);
        let mut read = 0u64;
        loop {
            let n = reader.read(&mut block)?;
            if n == 0 {
                break;
            }
            hash.update(&block[..n]);
            read += n as u64;
        }
        if read != file.size {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} changed while it was read", file.name),
            ));
        }
    }
    let digest = hash.finalize();
    Ok(ModelId::new(
        digest[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    ))
}

/// The catalog id of `account`'s upload of `content`: its own, so that two accounts' uploads of
/// the same bytes are two models, and neither id tells anything about the other.
pub fn owned_id(account: &str, content: &ModelId) -> ModelId {
    let digest = Sha256::new()
        .chain_update((account.len() as u64).to_le_bytes())
        .chain_update(account.as_bytes())
        .chain_update(content.as_str().as_bytes())
        .finalize();
    ModelId::new(
        digest[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    )
}

/// Writes via a temporary file and a rename, so a crash never leaves half a file in place; the
/// file's bytes and then the rename reach the disk before this returns, so a power cut never
/// leaves the database pointing at an empty or missing file.
pub async fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = temporary_beside(path);
    tokio::fs::write(&temporary, bytes).await?;
    settle(&temporary, path).await
}

/// Copies `from` to `path` as [`write_atomically`] writes: whole or not at all, and on disk.
pub async fn copy_atomically(
    from: &std::path::Path,
    path: &std::path::Path,
) -> std::io::Result<()> {
    let temporary = temporary_beside(path);
    tokio::fs::copy(from, &temporary).await?;
    settle(&temporary, path).await
}

/// Syncs `temporary`, renames it to `path`, and syncs the folder that holds the new name.
async fn settle(temporary: &std::path::Path, path: &std::path::Path) -> std::io::Result<()> {
    let synced = async {
        tokio::fs::File::open(temporary).await?.sync_all().await?;
        tokio::fs::rename(temporary, path).await
    }
    .await;
    if synced.is_err() {
        let _ = tokio::fs::remove_file(temporary).await;
        return synced;
    }
    sync_parent(path).await
}

/// Syncs the folder that holds `path`, so a new name in it is on disk.
async fn sync_parent(path: &Path) -> std::io::Result<()> {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    tokio::fs::File::open(folder).await?.sync_all().await
}

/// A hidden name beside `path` that no other writer uses: two writers of one file (two
/// conversions of the same files to one output) must not share a temporary file, or the second
/// rename finds it gone.
fn temporary_beside(path: &std::path::Path) -> std::path::PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.{}.partial", uuid::Uuid::new_v4().simple()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_held_by_one_until_let_go_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let first = Claim::take(dir.path(), ".convert-m")
            .unwrap()
            .expect("free");
        assert!(Claim::take(dir.path(), ".convert-m").unwrap().is_none());
        assert!(Claim::take(dir.path(), ".convert-n").unwrap().is_some());
        drop(first);
        assert!(Claim::take(dir.path(), ".convert-m").unwrap().is_some());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// A coordinator that starts on a models folder it shares removes the uploads a stop left,
    /// not the one a replica is receiving.
    #[tokio::test]
    async fn abandoned_staging_folders_are_removed_and_one_being_received_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let receiving = Staging::new(dir.path()).await.unwrap();
        let file = receiving.receive("part.stl").await.unwrap().unwrap();
        file.finish().await.unwrap();
        // Left by a stop: one from before claims, one whose claim's holder is gone.
        let old = dir.path().join(format!("{STAGING_PREFIX}old"));
        std::fs::create_dir(&old).unwrap();
        let died = dir.path().join(format!("{STAGING_PREFIX}died"));
        std::fs::create_dir(&died).unwrap();
        std::fs::write(dir.path().join(format!("{STAGING_PREFIX}died.lock")), "").unwrap();

        remove_abandoned_staging(dir.path()).unwrap();
        assert!(!old.exists() && !died.exists());
        assert!(receiving.path().join("part.stl").exists());
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left.len(), 2, "the upload and its claim: {left:?}");

        // Refused or done, it goes with its claim.
        let path = receiving.path().to_path_buf();
        drop(receiving);
        for _ in 0..100 {
            if std::fs::read_dir(dir.path()).unwrap().count() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    fn file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> UploadedFile {
        // Each file under a path of its own: the name hashed is the upload's, not the path's.
        let path = dir.path().join(format!("{}-{name}", uuid::Uuid::new_v4()));
        std::fs::write(&path, bytes).unwrap();
        UploadedFile {
            name: name.into(),
            path,
            size: bytes.len() as u64,
        }
    }

    #[test]
    fn the_same_files_get_the_same_id_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name, bytes| file(&dir, name, bytes);
        let a = content_id(&[file("a.gltf", b"x"), file("a.bin", b"y")]).unwrap();
        let b = content_id(&[file("a.bin", b"y"), file("a.gltf", b"x")]).unwrap();
        assert_eq!(a, b);
        assert_ne!(
            a,
            content_id(&[file("a.gltf", b"x"), file("a.bin", b"z")]).unwrap()
        );
        assert_eq!(a.as_str().len(), 32);
        // The id uploads had when they were held in memory: models stored then keep theirs.
        assert_eq!(
            content_id(&[file("part.stl", b"solid")]).unwrap().as_str(),
            "1474c2dc43f3cb01212a33dc875bce66"
        );
    }

    #[test]
    fn each_account_has_its_own_id_for_the_same_content() {
        let dir = tempfile::tempdir().unwrap();
        let content = content_id(&[file(&dir, "a.stl", b"x")]).unwrap();
        let (a, b) = (
            owned_id("account-a", &content),
            owned_id("account-b", &content),
        );
        assert_ne!(a, b);
        assert_ne!(a, content);
        assert_eq!(a, owned_id("account-a", &content));
        assert_eq!(a.as_str().len(), 32);
    }

    #[test]
    fn file_names_cannot_escape_the_model_folder() {
        assert!(safe_file_name("bracket.stl"));
        for bad in [
            "",
            "../x.stl",
            "a/b.stl",
            "c:\\\\x.stl",
            ".hidden",
            "thumbnail.png",
        ] {
            assert!(!safe_file_name(bad), "{bad}");
        }
    }
}
