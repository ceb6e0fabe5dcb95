//! How an upload lies on disk: its files under `<data dir>/models/<id>/` with their own names,
//! checked so none can escape the folder, `id` a hash of them all, each written atomically.

use parallax_core::ModelId;
use sha2::{Digest, Sha256};

/// Uploads are limited to this by default (`--max-upload-mb`).
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 256 * 1024 * 1024;

/// The thumbnail's file name in a model's folder.
pub const THUMBNAIL: &str = "thumbnail.png";

/// One file of an upload.
pub struct UploadedFile {
    pub name: String,
    pub bytes: Vec<u8>,
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

/// Hash of every file's name and bytes, in name order: the same upload gives the same id.
pub fn content_id(files: &[UploadedFile]) -> ModelId {
    let mut sorted: Vec<&UploadedFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut hash = Sha256::new();
    for file in sorted {
        hash.update((file.name.len() as u64).to_le_bytes());
        hash.update(file.name.as_bytes());
        hash.update((file.bytes.len() as u64).to_le_bytes());
        hash.update(&file.bytes);
    }
    let digest = hash.finalize();
    ModelId::new(
        digest[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    )
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
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
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

    fn file(name: &str, bytes: &[u8]) -> UploadedFile {
        UploadedFile {
            name: name.into(),
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn the_same_files_get_the_same_id_in_any_order() {
        let a = content_id(&[file("a.gltf", b"x"), file("a.bin", b"y")]);
        let b = content_id(&[file("a.bin", b"y"), file("a.gltf", b"x")]);
        assert_eq!(a, b);
        assert_ne!(a, content_id(&[file("a.gltf", b"x"), file("a.bin", b"z")]));
        assert_eq!(a.as_str().len(), 32);
    }

    #[test]
    fn each_account_has_its_own_id_for_the_same_content() {
        let content = content_id(&[file("a.stl", b"x")]);
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
