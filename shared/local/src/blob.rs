//! `BlobStore` on a directory tree, with HMAC-signed expiring download URLs that the
//! embedded platform serves.
//!
//! A blob `a/b/c` is the file `objects/a/b/c~`: the `~` (never in a key) keeps `a/b` (a
//! file, `a/b~`) and `a/b/c` (under the directory `a/b`) from colliding, as S3 allows
//! both. Each file starts with a one-line header naming its content type. Writes go to
//! `tmp/`, are synced, then renamed into place, so a reader sees the old blob or the new
//! one and a crash leaves no torn file.

use std::io::{BufRead, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use oratio_core::blob::{Blob, BlobError, BlobKey, BlobMeta, BlobStore, validate_content_type, validate_ttl};
use oratio_core::health::HealthCheck;
use oratio_core::time::now_epoch;
use rand::RngCore;
use sha2::Sha256;

const MAGIC: &str = "oratio-blob 1";
const FILE_SUFFIX: char = '~';

/// Blobs in a directory tree.
#[derive(Clone)]
pub struct DirBlobStore {
    root: PathBuf,
    signing_key: Vec<u8>,
    base_url: String,
}

/// Why a signed download was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignedUrlError {
    #[error("the download link has expired")]
    Expired,
    #[error("the download link is not valid")]
    BadSignature,
    #[error("the blob no longer exists")]
    NotFound,
    #[error(transparent)]
    Store(#[from] BlobError),
}

fn backend(context: &'static str) -> impl FnOnce(std::io::Error) -> BlobError {
    move |e| BlobError::Backend(anyhow::Error::new(e).context(context))
}

impl DirBlobStore {
    /// Opens the store at `root`. Signed URLs point at `{base_url}/local/blobs/{key}`.
    /// The signing key lives in `root/signing.key` and is created on first use.
    pub fn open(root: impl AsRef<Path>, base_url: impl Into<String>) -> anyhow::Result<Self> {
        let root = root.as_ref().to_path_buf();
        std::fs::create_dir_all(root.join("objects")).context("creating the blob directory")?;
        let tmp = root.join("tmp");
        // Leftovers of writes a crash interrupted: never renamed, never acknowledged.
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).context("creating the blob tmp directory")?;
        let signing_key = crate::files::load_or_create_secret(&root.join("signing.key"))?;
        Ok(Self { root, signing_key, base_url: base_url.into().trim_end_matches('/').to_owned() })
    }

    fn path(&self, key: &BlobKey) -> PathBuf {
        let mut path = self.root.join("objects");
        path.push(format!("{key}{FILE_SUFFIX}"));
        path
    }

    fn mac(&self, key: &str, expires: i64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.signing_key).expect("HMAC takes any key length");
        mac.update(key.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// Serves a signed download: checks the signature and expiry, then reads the blob.
    pub async fn open_signed(&self, key: &str, expires: i64, signature: &str) -> Result<Blob, SignedUrlError> {
        let given = hex::decode(signature).map_err(|_| SignedUrlError::BadSignature)?;
        // Constant-time comparison.
        self.mac(key, expires).verify_slice(&given).map_err(|_| SignedUrlError::BadSignature)?;
        if expires <= now_epoch() {
            return Err(SignedUrlError::Expired);
        }
        let key = BlobKey::parse(key).map_err(|_| SignedUrlError::BadSignature)?;
        self.get(&key).await?.ok_or(SignedUrlError::NotFound)
    }
}

fn read_header(reader: &mut impl BufRead) -> std::io::Result<(String, u64)> {
    let mut magic = String::new();
    let mut content_type = String::new();
    let n = reader.read_line(&mut magic)? + reader.read_line(&mut content_type)?;
    if magic.trim_end() != MAGIC || !content_type.ends_with('\n') {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not an oratio blob"));
    }
    Ok((content_type.trim_end().to_owned(), n as u64))
}

fn read_blob(path: &Path) -> std::io::Result<Option<Blob>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::new(file);
    let (content_type, _) = read_header(&mut reader)?;
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes)?;
    Ok(Some(Blob { bytes, content_type }))
}

fn meta(objects: &Path, path: &Path) -> std::io::Result<Option<BlobMeta>> {
    let Some(relative) = path.strip_prefix(objects).ok().and_then(Path::to_str) else {
        return Ok(None);
    };
    let Some(key) = relative.strip_suffix(FILE_SUFFIX) else {
        return Ok(None);
    };
    let Ok(key) = BlobKey::parse(key) else {
        return Ok(None);
    };
    let file = std::fs::File::open(path)?;
    let stat = file.metadata()?;
    let (_, header) = read_header(&mut BufReader::new(file))?;
    let last_modified: DateTime<Utc> = stat.modified()?.into();
    Ok(Some(BlobMeta { key, size: stat.len().saturating_sub(header), last_modified }))
}

fn walk(objects: &Path, dir: &Path, prefix: &str, out: &mut Vec<BlobMeta>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(objects, &path, prefix, out)?;
        } else if let Some(m) = meta(objects, &path)?.filter(|m| m.key.as_str().starts_with(prefix)) {
            out.push(m);
        }
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BlobError::Backend(anyhow::Error::new(e).context("blob worker panicked")))?
}

#[async_trait]
impl BlobStore for DirBlobStore {
    async fn put(&self, key: &BlobKey, bytes: Vec<u8>, content_type: &str) -> Result<(), BlobError> {
        validate_content_type(content_type)?;
        let path = self.path(key);
        let tmp = self.root.join("tmp").join(random_name());
        let header = format!("{MAGIC}\n{content_type}\n");
        blocking(move || {
            let dir = path.parent().expect("a blob path has a parent");
            std::fs::create_dir_all(dir).map_err(backend("creating the blob's directory"))?;
            let mut file = std::fs::File::create(&tmp).map_err(backend("creating a blob"))?;
            file.write_all(header.as_bytes()).map_err(backend("writing a blob"))?;
            file.write_all(&bytes).map_err(backend("writing a blob"))?;
            file.sync_all().map_err(backend("syncing a blob"))?;
            std::fs::rename(&tmp, &path).map_err(backend("placing a blob"))?;
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(backend("syncing a blob directory"))?;
            Ok(())
        })
        .await
    }

    async fn get(&self, key: &BlobKey) -> Result<Option<Blob>, BlobError> {
        let path = self.path(key);
        blocking(move || read_blob(&path).map_err(backend("reading a blob"))).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError> {
        let objects = self.root.join("objects");
        // Start from the deepest directory the prefix names whole.
        let start = match prefix.rsplit_once('/') {
            Some((dirs, _)) if !dirs.is_empty() => {
                BlobKey::parse(dirs).map_err(|_| BlobError::InvalidKey(prefix.into()))?;
                objects.join(dirs)
            }
            _ => objects.clone(),
        };
        let prefix = prefix.to_owned();
        blocking(move || {
            let mut out = Vec::new();
            walk(&objects, &start, &prefix, &mut out).map_err(backend("listing blobs"))?;
            out.sort_by(|a, b| a.key.as_str().as_bytes().cmp(b.key.as_str().as_bytes()));
            Ok(out)
        })
        .await
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        let path = self.path(key);
        blocking(move || match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(backend("deleting a blob")(e)),
            _ => Ok(()),
        })
        .await
    }

    async fn signed_download_url(&self, key: &BlobKey, ttl: Duration) -> Result<String, BlobError> {
        validate_ttl(ttl)?;
        let expires = now_epoch() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        let signature = hex::encode(self.mac(key.as_str(), expires).finalize().into_bytes());
        Ok(format!("{}/local/blobs/{key}?expires={expires}&signature={signature}", self.base_url))
    }
}

fn random_name() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[async_trait]
impl HealthCheck for DirBlobStore {
    fn name(&self) -> &'static str {
        "blobs"
    }

    fn backend(&self) -> &'static str {
        "filesystem"
    }

    async fn probe(&self) -> Result<(), String> {
        let objects = self.root.join("objects");
        blocking(move || std::fs::metadata(&objects).map(drop).map_err(backend("probing the blob directory")))
            .await
            .map_err(|e| e.to_string())
    }
}
