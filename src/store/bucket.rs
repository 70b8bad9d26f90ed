//! Objects in an S3-compatible bucket (`--storage-url s3://bucket/prefix`),
//! through the `object_store` crate. Endpoint, region and credentials come
//! from the standard `AWS_*` variables (`AWS_ENDPOINT_URL`, `AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, and the
//! rest `object_store` reads); requests are path-style unless
//! `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`. Credentials are never printed: this
//! type's `Debug` shows the URL only.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ClientConfigKey, ObjectStore, ObjectStoreExt, RetryConfig};
use tokio::io::AsyncWriteExt;

use super::objects::{FilesError, FilesResult, Listed, LocalFile, Objects};

/// Parts of a streamed upload: the size of each, and how many are in flight
/// (so one upload holds at most about 2 x 8 MiB in memory).
const PART_BYTES: usize = 8 << 20;
const PARTS_IN_FLIGHT: usize = 2;
/// How long readiness waits for the bucket to answer.
const CHECK_LIMIT: Duration = Duration::from_secs(2);
/// Unless the `AWS_*` variables say otherwise: a connection is given up after
/// this long, and a whole request (one part of an upload at most) after that.
const CONNECT_TIMEOUT: &str = "5s";
const REQUEST_TIMEOUT: &str = "60s";
/// A failed request is tried again this many times, within this long, so a
/// bucket that went away gives a 503 in seconds rather than minutes.
const RETRIES: usize = 3;
const RETRY_WITHIN: Duration = Duration::from_secs(15);

/// A bucket, and the folder in it that holds Sori's objects.
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    /// The prefix every object name is under (empty: the bucket's top).
    prefix: String,
    /// `s3://bucket/prefix`, for messages.
    url: String,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket").field("url", &self.url).finish()
    }
}

impl Bucket {
    /// The bucket of `url` (`s3://bucket` or `s3://bucket/prefix`), with
    /// the `AWS_*` variables' settings.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| anyhow::anyhow!("--storage-url must look like s3://bucket/prefix, not {url:?}"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        anyhow::ensure!(!bucket.is_empty(), "--storage-url {url:?} names no bucket");
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let client = |key| AmazonS3ConfigKey::Client(key);
        for (key, default) in [
            (ClientConfigKey::ConnectTimeout, CONNECT_TIMEOUT),
            (ClientConfigKey::Timeout, REQUEST_TIMEOUT),
        ] {
            if builder.get_config_value(&client(key)).is_none() {
                builder = builder.with_config(client(key), default);
            }
        }
        // An endpoint given as http:// (a server in the same network) is taken as meant.
        let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
        if endpoint.is_some_and(|e| e.starts_with("http://")) {
            builder = builder.with_allow_http(true);
        }
        let store = builder
            .with_retry(RetryConfig {
                max_retries: RETRIES,
                retry_timeout: RETRY_WITHIN,
                ..RetryConfig::default()
            })
            .build()
            .map_err(|e| anyhow::anyhow!("the bucket of --storage-url {url}: {e}"))?;
        Ok(Self {
            store: Arc::new(store),
            prefix: prefix.trim_matches('/').to_string(),
            url: url.to_string(),
        })
    }

    /// Writes and removes a small object, so that a bucket that does not
    /// exist or may not be written is said at start, not at the first upload.
    pub async fn check_writable(&self) -> anyhow::Result<()> {
        let probe = self.path(".sori-write-check");
        let written = async {
            self.store.put(&probe, b"ok".to_vec().into()).await?;
            self.store.delete(&probe).await
        };
        written
            .await
            .map_err(|e| anyhow::anyhow!("the bucket {} cannot be written: {e}", self.url))
    }

    fn path(&self, name: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(name)
        } else {
            ObjectPath::from(format!("{}/{name}", self.prefix))
        }
    }
}

/// Every error of the bucket is one of reaching it (refused, timed out,
/// throttled, denied): the request may work later, once it answers again.
fn unavailable(e: object_store::Error) -> FilesError {
    FilesError::Unavailable(e.to_string())
}

#[async_trait]
impl Objects for Bucket {
    async fn put(&self, name: &str, bytes: Vec<u8>) -> FilesResult<()> {
        self.store
            .put(&self.path(name), bytes.into())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn get(&self, name: &str) -> FilesResult<Option<Vec<u8>>> {
        match self.store.get(&self.path(name)).await {
            Ok(got) => Ok(Some(got.bytes().await.map_err(unavailable)?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn exists(&self, name: &str) -> FilesResult<bool> {
        match self.store.head(&self.path(name)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn delete(&self, name: &str) -> FilesResult<bool> {
        // S3 answers a delete of a missing object as done: ask first.
        if !self.exists(name).await? {
            return Ok(false);
        }
        self.store.delete(&self.path(name)).await.map_err(unavailable)?;
        Ok(true)
    }

    async fn list(&self, folder: &str) -> FilesResult<Vec<Listed>> {
        let dir = match (self.prefix.is_empty(), folder.is_empty()) {
            (true, true) => None,
            (false, true) => Some(ObjectPath::from(self.prefix.as_str())),
            _ => Some(self.path(folder)),
        };
        let listed = self
            .store
            .list_with_delimiter(dir.as_ref())
            .await
            .map_err(unavailable)?;
        Ok(listed
            .objects
            .into_iter()
            .filter_map(|meta| {
                Some(Listed {
                    name: meta.location.filename()?.to_string(),
                    modified: meta.last_modified.into(),
                })
            })
            .collect())
    }

    async fn put_file(&self, name: &str, from: &Path) -> FilesResult<()> {
        let mut file = tokio::fs::File::open(from).await?;
        let mut writer = BufWriter::with_capacity(self.store.clone(), self.path(name), PART_BYTES)
            .with_max_concurrency(PARTS_IN_FLIGHT);
        let failed = |e: std::io::Error| FilesError::Unavailable(format!("uploading {name}: {e}"));
        if let Err(e) = tokio::io::copy(&mut file, &mut writer).await {
            // The parts sent so far are dropped (an upload that fails while
            // completing is left to the bucket's rule for incomplete uploads).
            let _ = writer.abort().await;
            return Err(failed(e));
        }
        writer.shutdown().await.map_err(failed)
    }

    async fn local_file(&self, name: &str, scratch: &Path) -> FilesResult<Option<LocalFile>> {
        let got = match self.store.get(&self.path(name)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(unavailable(e)),
        };
        // Made before the first byte: a failed copy is removed with it.
        let copy = LocalFile::copy(scratch.to_path_buf());
        let mut file = tokio::fs::File::create(scratch).await?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk.map_err(unavailable)?).await?;
        }
        file.flush().await?;
        Ok(Some(copy))
    }

    fn location(&self) -> String {
        self.url.clone()
    }

    fn is_local(&self) -> bool {
        false
    }

    async fn check(&self) -> FilesResult<()> {
        let probe = self.path(".sori-write-check");
        match tokio::time::timeout(CHECK_LIMIT, self.store.head(&probe)).await {
            Ok(Ok(_) | Err(object_store::Error::NotFound { .. })) => Ok(()),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(FilesError::Unavailable(format!(
                "the bucket {} did not answer within {} s",
                self.url,
                CHECK_LIMIT.as_secs()
            ))),
        }
    }
}
