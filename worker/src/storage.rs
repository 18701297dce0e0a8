//! Object storage for one tenant at one destination, through `object_store`:
//! `file://` (local filesystem) or `s3://` (any S3-compatible server, path style,
//! plain http allowed for local servers). Keys are relative to the tenant prefix
//! `CLUSTER_NAME/CLUSTER_ID/incarnation_N/TENANT_ID`. Every call can be cancelled;
//! transient S3 errors are retried with backoff by object_store's retry layer; large
//! objects go up in multipart uploads.

use std::sync::Arc;
use std::time::Duration;

use backstop_common::BackupDest;
use backstop_common::task::TenantDest;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart};
use tokio_util::sync::CancellationToken;

use crate::error::{Result, WorkerError};

/// Objects at least this large are uploaded in parts.
pub const MULTIPART_THRESHOLD: usize = 8 * 1024 * 1024;
/// Part size of multipart uploads.
pub const PART_SIZE: usize = 5 * 1024 * 1024;

/// A tenant's area at a destination.
#[derive(Clone)]
pub struct TenantStore {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    shown: String,
    /// The tenant's area on disk, for `file://` destinations.
    local: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for TenantStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TenantStore({}/{})", self.shown, self.prefix)
    }
}

/// Opens the object store of a destination URI (`file://` or `s3://`).
///
/// An `s3://` URI without `access_id`/`access_key` signs with this process's keys:
/// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, else the AWS shared credentials file
/// (`AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`, profile `AWS_PROFILE` or
/// `default`), else object_store's AWS chain. Errors: [`WorkerError::Invalid`] for a
/// bad URI or credentials file, [`WorkerError::Storage`] when the store cannot open.
pub fn open_dest(uri: &str) -> Result<Arc<dyn ObjectStore>> {
    let dest = BackupDest::parse(uri).map_err(|e| WorkerError::Invalid(e.to_string()))?;
    match dest {
        BackupDest::File { path } => {
            std::fs::create_dir_all(&path)
                .map_err(|e| WorkerError::Storage(format!("create {path}: {e}")))?;
            let fs = LocalFileSystem::new_with_prefix(&path)
                .map_err(|e| WorkerError::Storage(format!("open {path}: {e}")))?;
            Ok(Arc::new(fs))
        }
        BackupDest::S3 {
            bucket,
            host,
            access_id,
            access_key,
            region,
            ..
        } => {
            // Keys in the URI win; without them, this process's environment, then
            // the AWS shared credentials file, then object_store's AWS credential
            // chain (web identity, ECS, instance metadata) provide them.
            let mut b = match (&access_id, &access_key) {
                (Some(id), Some(key)) => AmazonS3Builder::new()
                    .with_access_key_id(id)
                    .with_secret_access_key(key),
                _ => {
                    let mut b = AmazonS3Builder::from_env();
                    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
                        && let Some(keys) = shared_credentials()?
                    {
                        b = b
                            .with_access_key_id(keys.access_key_id)
                            .with_secret_access_key(keys.secret_access_key);
                        if let Some(token) = keys.session_token {
                            b = b.with_token(token);
                        }
                    }
                    b
                }
            };
            let region = region
                .clone()
                .or_else(|| std::env::var("AWS_REGION").ok())
                .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok());
            b = b
                .with_bucket_name(&bucket)
                .with_region(region.as_deref().unwrap_or("us-east-1"))
                .with_virtual_hosted_style_request(false)
                .with_retry(RetryConfig {
                    max_retries: 5,
                    retry_timeout: Duration::from_secs(30),
                    ..Default::default()
                });
            if let Some(host) = host {
                b = b.with_endpoint(&host).with_allow_http(true);
            }
            Ok(Arc::new(b.build().map_err(|e| {
                WorkerError::Storage(format!("open s3 bucket {bucket}: {e}"))
            })?))
        }
    }
}

/// Keys of one profile of the AWS shared credentials file.
struct SharedKeys {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

/// Reads the AWS shared credentials file, as the AWS CLI and SDKs do: the file is
/// `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`; the profile is
/// `AWS_PROFILE`, else `default`; its keys are `aws_access_key_id`,
/// `aws_secret_access_key` and optionally `aws_session_token`.
///
/// `Ok(None)` when there is no such file (the AWS chain is tried next). A file that
/// exists but cannot be read or parsed, a named profile it lacks, or a profile
/// without both keys is [`WorkerError::Invalid`], naming the file and profile, never a
/// key.
fn shared_credentials() -> Result<Option<SharedKeys>> {
    let explicit = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE");
    let path = match &explicit {
        Some(p) => std::path::PathBuf::from(p),
        None => match std::env::var_os("HOME") {
            Some(home) => std::path::Path::new(&home).join(".aws").join("credentials"),
            None => return Ok(None),
        },
    };
    if explicit.is_none() && !path.exists() {
        return Ok(None);
    }
    let shown = path.display();
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_string());
    let ini = ini::Ini::load_from_file(&path)
        .map_err(|e| WorkerError::Invalid(format!("AWS credentials file {shown}: {e}")))?;
    let Some(section) = ini.section(Some(profile.as_str())) else {
        if std::env::var_os("AWS_PROFILE").is_some() {
            return Err(WorkerError::Invalid(format!(
                "AWS credentials file {shown} has no profile [{profile}] (AWS_PROFILE)"
            )));
        }
        return Ok(None);
    };
    match (
        section.get("aws_access_key_id"),
        section.get("aws_secret_access_key"),
    ) {
        (Some(id), Some(key)) => Ok(Some(SharedKeys {
            access_key_id: id.to_string(),
            secret_access_key: key.to_string(),
            session_token: section.get("aws_session_token").map(str::to_string),
        })),
        _ => Err(WorkerError::Invalid(format!(
            "AWS credentials file {shown}: profile [{profile}] needs both \
             aws_access_key_id and aws_secret_access_key"
        ))),
    }
}

impl TenantStore {
    /// Opens the tenant's area of `dest`.
    pub fn open(dest: &TenantDest) -> Result<TenantStore> {
        let parsed =
            BackupDest::parse(&dest.uri).map_err(|e| WorkerError::Invalid(e.to_string()))?;
        let s3_prefix = match &parsed {
            BackupDest::S3 { prefix, .. } if !prefix.is_empty() => format!("{prefix}/"),
            _ => String::new(),
        };
        let local = match &parsed {
            BackupDest::File { path } => {
                Some(std::path::Path::new(path).join(dest.tenant_prefix()))
            }
            BackupDest::S3 { .. } => None,
        };
        Ok(TenantStore {
            store: open_dest(&dest.uri)?,
            prefix: format!("{s3_prefix}{}", dest.tenant_prefix()),
            shown: parsed.root_path(),
            local,
        })
    }

    /// Removes what listing cannot see under `dir` at a `file://` destination: the
    /// staging files (`name#N`) of writers killed mid-upload, then empty directories.
    /// Call it only where no writer is live (a finished or deleted directory). Returns
    /// the files removed; always 0 on S3, where unfinished multipart uploads are the
    /// bucket's lifecycle rules' business.
    ///
    /// Errors: `Storage` if a file cannot be removed.
    pub async fn remove_staging(&self, dir: &str) -> Result<u64> {
        let Some(root) = &self.local else {
            return Ok(0);
        };
        let dir = root.join(dir);
        tokio::task::spawn_blocking(move || sweep(&dir))
            .await
            .map_err(|e| WorkerError::Storage(format!("sweep staging files: {e}")))?
    }

    fn path(&self, key: &str) -> Path {
        Path::from(format!("{}/{key}", self.prefix))
    }

    /// Writes an object (multipart above [`MULTIPART_THRESHOLD`]). At a `file://`
    /// destination the file and its directory are fsynced before this returns, so a
    /// manifest, marker or index written after it never names an object a crash can
    /// lose (object_store's local store does not sync).
    ///
    /// Errors: `Cancelled`; `Storage` naming the key when the put or a sync fails.
    pub async fn put(&self, key: &str, data: Bytes, cancel: &CancellationToken) -> Result<()> {
        self.put_unsynced(key, data, cancel).await?;
        self.sync_local(key, cancel).await
    }

    /// fsyncs the file of `key` and its directory at a `file://` destination.
    async fn sync_local(&self, key: &str, cancel: &CancellationToken) -> Result<()> {
        let Some(root) = &self.local else {
            return Ok(());
        };
        let file = root.join(key);
        let key = key.to_string();
        let sync = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::File::open(&file)?.sync_all()?;
            if let Some(dir) = file.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        });
        tokio::select! {
            _ = cancel.cancelled() => Err(WorkerError::Cancelled),
            r = sync => r
                .map_err(|e| WorkerError::Storage(format!("sync {key}: {e}")))?
                .map_err(|e| WorkerError::Storage(format!("sync {key}: {e}"))),
        }
    }

    async fn put_unsynced(&self, key: &str, data: Bytes, cancel: &CancellationToken) -> Result<()> {
        let path = self.path(key);
        let fut = async {
            if data.len() < MULTIPART_THRESHOLD {
                self.store.put(&path, PutPayload::from_bytes(data)).await?;
                return Ok::<(), WorkerError>(());
            }
            let upload = self.store.put_multipart(&path).await?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            for chunk in data.chunks(PART_SIZE) {
                writer.wait_for_capacity(4).await?;
                writer.write(chunk);
            }
            writer.finish().await?;
            Ok(())
        };
        tokio::select! {
            _ = cancel.cancelled() => Err(WorkerError::Cancelled),
            r = fut => r.map_err(|e| match e {
                WorkerError::Storage(m) => WorkerError::Storage(format!("put {key}: {m}")),
                other => other,
            }),
        }
    }

    /// Reads a whole object.
    pub async fn get(&self, key: &str, cancel: &CancellationToken) -> Result<Bytes> {
        let path = self.path(key);
        let fut = async { self.store.get(&path).await?.bytes().await };
        tokio::select! {
            _ = cancel.cancelled() => Err(WorkerError::Cancelled),
            r = fut => r.map_err(|e| match e {
                object_store::Error::NotFound { .. } => WorkerError::Corrupt(format!("object {key} is missing")),
                e => WorkerError::Storage(format!("get {key}: {e}")),
            }),
        }
    }

    /// Reads `len` bytes at `offset` of an object.
    pub async fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
        cancel: &CancellationToken,
    ) -> Result<Bytes> {
        let path = self.path(key);
        let fut = self.store.get_range(&path, offset..offset + len);
        tokio::select! {
            _ = cancel.cancelled() => Err(WorkerError::Cancelled),
            r = fut => r.map_err(|e| match e {
                object_store::Error::NotFound { .. } => WorkerError::Corrupt(format!("object {key} is missing")),
                e => WorkerError::Storage(format!("get {key}: {e}")),
            }),
        }
    }

    /// The stored size of an object in bytes, `None` if it does not exist.
    ///
    /// Errors: `Storage` when the store cannot say.
    pub async fn size(&self, key: &str) -> Result<Option<u64>> {
        match self.store.head(&self.path(key)).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(WorkerError::Storage(format!("head {key}: {e}"))),
        }
    }

    /// Whether an object exists.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        match self.store.head(&self.path(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(WorkerError::Storage(format!("head {key}: {e}"))),
        }
    }

    /// Keys (relative to the tenant prefix) under `dir`.
    pub async fn list(&self, dir: &str) -> Result<Vec<String>> {
        let base = format!("{}/", self.prefix);
        let metas: Vec<_> = self
            .store
            .list(Some(&self.path(dir)))
            .try_collect()
            .await
            .map_err(|e| WorkerError::Storage(format!("list {dir}: {e}")))?;
        let mut keys: Vec<String> = metas
            .into_iter()
            .filter_map(|m| m.location.as_ref().strip_prefix(&base).map(str::to_string))
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Deletes an object; a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(WorkerError::Storage(format!("delete {key}: {e}"))),
        }
    }

    /// The destination without secrets, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

/// object_store's `LocalFileSystem` writes `name#N` and renames it into place.
fn is_staging(name: &str) -> bool {
    name.rsplit_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn sweep(dir: &std::path::Path) -> Result<u64> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            removed += sweep(&path)?;
        } else if is_staging(&entry.file_name().to_string_lossy()) {
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(WorkerError::Storage(format!(
                        "remove {}: {e}",
                        path.display()
                    )));
                }
            }
        }
    }
    // Fails (and is left) unless empty.
    let _ = std::fs::remove_dir(dir);
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::is_staging;

    #[test]
    fn staging_names_are_name_hash_number() {
        assert!(is_staging("log_1_2#3"));
        assert!(is_staging(".complete#12"));
        assert!(!is_staging("log_1_2"));
        assert!(!is_staging("a#b"));
        assert!(!is_staging("a#"));
    }
}
