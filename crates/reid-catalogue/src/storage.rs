//! Where a photo's bytes live.
//!
//! The catalogue keeps each photo's location as it was registered: a path
//! on storage the machines share (NFS, SMB, a synced folder), or an
//! `http://` / `https://` URL (object storage behind a web server, a
//! presigned bucket URL, an archive's file server). Every command and
//! worker that needs a photo's bytes asks a [`PhotoFetcher`]:
//!
//! - a path is read where it is, after the machine's prefix map
//!   ([`PhotoFetcher::map_prefix`]: the same share mounted at
//!   `/data/photos` on one machine and `/mnt/photos` on another);
//! - a URL is downloaded once into a local cache (one file per URL, written
//!   atomically, so a process killed mid-download leaves nothing half
//!   written), bounded in size and time, with a typed error naming the URL
//!   and the HTTP status or transport failure;
//! - [`PhotoFetcher::local_with_hash`] also returns the sha256 of the bytes,
//!   which callers compare with the registered one: a cached copy that
//!   disagrees is downloaded again once (the object was replaced), so a
//!   changed photo is reported, never embedded under its old hash.
//!
//! ```
//! use reid_catalogue::storage::{PhotoFetcher, is_url};
//! use std::path::Path;
//!
//! let dir = tempfile::tempdir()?;
//! let fetcher = PhotoFetcher::new(dir.path().join("photos"))
//!     .map_prefix("/data/photos", "/mnt/nfs/photos");
//! // Paths: read in place, after the machine's prefix map.
//! assert_eq!(
//!     fetcher.local(Path::new("/data/photos/a.jpg"))?,
//!     Path::new("/mnt/nfs/photos/a.jpg")
//! );
//! assert_eq!(fetcher.local(Path::new("b/c.jpg"))?, Path::new("b/c.jpg"));
//! // URLs: downloaded into the cache, one file per URL.
//! assert!(is_url(Path::new("https://photos.example.org/cows/0001.jpg")));
//! assert!(fetcher
//!     .cached_path("https://photos.example.org/cows/0001.jpg")
//!     .starts_with(dir.path()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{CatalogueError, Result};

/// The variable holding a machine's prefix map:
/// `FROM=TO` pairs separated by `;` (see [`PhotoFetcher::from_env`]).
pub const PATH_MAP_ENV: &str = "ANIMAL_REID_PATH_MAP";

/// The variable naming the download cache (default: `photos` in the
/// project cache, [`reid_core::paths::cache_dir`]).
pub const PHOTO_CACHE_ENV: &str = "ANIMAL_REID_PHOTO_CACHE";

/// The download cache: `$ANIMAL_REID_PHOTO_CACHE`, else `photos` in the
/// project cache.
pub fn default_dir() -> PathBuf {
    std::env::var_os(PHOTO_CACHE_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| reid_core::paths::cache_dir().join("photos"))
}

/// Largest photo downloaded by default (bytes).
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

/// Whether a registered location is a URL this module downloads
/// (`http://` or `https://`; the CSV loaders keep such cells as they are).
pub fn is_url(location: &Path) -> bool {
    reid_data::loaders::is_url_cell(location)
}

fn fetch_err(url: &str, message: impl Into<String>) -> CatalogueError {
    CatalogueError::Fetch {
        url: url.to_string(),
        message: message.into(),
    }
}

/// Turns registered locations into files this machine can read.
#[derive(Debug, Clone)]
pub struct PhotoFetcher {
    dir: PathBuf,
    maps: Vec<(PathBuf, PathBuf)>,
    max_bytes: u64,
    agent: ureq::Agent,
}

impl PhotoFetcher {
    /// Downloads go to `dir` (created when needed); 30 s to connect, 300 s
    /// per photo, at most [`DEFAULT_MAX_BYTES`].
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30))
            .timeout(Duration::from_secs(300))
            .user_agent(concat!("animal-reid/", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            dir: dir.into(),
            maps: Vec::new(),
            max_bytes: DEFAULT_MAX_BYTES,
            agent,
        }
    }

    /// The download cache of [`default_dir`], with the prefix map of
    /// [`PATH_MAP_ENV`] (e.g. `/data/photos=/mnt/nfs/photos;/srv/a=/b`).
    pub fn from_env() -> Result<Self> {
        Self::new(default_dir()).with_env_maps()
    }

    /// Adds the prefix maps of [`PATH_MAP_ENV`] after those already given.
    pub fn with_env_maps(mut self) -> Result<Self> {
        if let Ok(v) = std::env::var(PATH_MAP_ENV) {
            for pair in v.split(';').filter(|p| !p.trim().is_empty()) {
                self = self
                    .map_spec(pair)
                    .map_err(|e| CatalogueError::Invalid(format!("{PATH_MAP_ENV}: {e}")))?;
            }
        }
        Ok(self)
    }

    /// Adds a prefix map from a `FROM=TO` text (a command-line option).
    pub fn map_spec(self, spec: &str) -> Result<Self> {
        match spec.split_once('=') {
            Some((from, to)) if !from.trim().is_empty() && !to.trim().is_empty() => {
                Ok(self.map_prefix(from.trim(), to.trim()))
            }
            _ => Err(CatalogueError::Invalid(format!(
                "path map {spec:?}: expected FROM=TO (the registered prefix, then where this \
                 machine sees it)"
            ))),
        }
    }

    /// Reads paths registered under `from` at `to` on this machine (whole
    /// path components; the first matching map wins).
    #[must_use]
    pub fn map_prefix(mut self, from: impl Into<PathBuf>, to: impl Into<PathBuf>) -> Self {
        self.maps.push((from.into(), to.into()));
        self
    }

    /// Refuses downloads above `bytes`.
    #[must_use]
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Where the download of `url` is kept.
    pub fn cached_path(&self, url: &str) -> PathBuf {
        let key = hex::encode(&Sha256::digest(url.as_bytes())[..20]);
        // Keep a short, plain extension: image decoders and people both
        // read it.
        let path = url.split(['?', '#']).next().unwrap_or(url);
        let ext = path
            .rsplit('/')
            .next()
            .and_then(|name| name.rsplit_once('.'))
            .map(|(_, e)| e.to_ascii_lowercase())
            .filter(|e| {
                !e.is_empty() && e.len() <= 5 && e.chars().all(|c| c.is_ascii_alphanumeric())
            });
        match ext {
            Some(e) => self.dir.join(format!("{key}.{e}")),
            None => self.dir.join(key),
        }
    }

    /// A file holding the bytes of `location`: a path (after the prefix
    /// map) as it is, a URL's cached download (fetched when absent).
    pub fn local(&self, location: &Path) -> Result<PathBuf> {
        let Some(url) = self.url_of(location)? else {
            return Ok(self.mapped(location));
        };
        let file = self.cached_path(url);
        if !file.is_file() {
            self.download(url, &file)?;
        }
        Ok(file)
    }

    /// [`Self::local`] and the sha256 (hex) of the file's bytes. A URL's
    /// cached copy whose hash is not `expected` is downloaded again once
    /// (the object was replaced since it was cached); the hash returned is
    /// then the fresh one, for the caller to compare.
    pub fn local_with_hash(&self, location: &Path, expected: &str) -> Result<(PathBuf, String)> {
        let Some(url) = self.url_of(location)? else {
            let file = self.mapped(location);
            let hash = crate::catalogue::content_hash(&file)?;
            return Ok((file, hash));
        };
        let file = self.cached_path(url);
        if !file.is_file() {
            // A fresh download is what the URL serves now: no second try.
            self.download(url, &file)?;
            let hash = crate::catalogue::content_hash(&file)?;
            return Ok((file, hash));
        }
        let hash = crate::catalogue::content_hash(&file)?;
        if hash == expected {
            return Ok((file, hash));
        }
        self.download(url, &file)?;
        let again = crate::catalogue::content_hash(&file)?;
        Ok((file, again))
    }

    /// The URL of `location` (`None`: a path); other schemes are refused.
    fn url_of<'a>(&self, location: &'a Path) -> Result<Option<&'a str>> {
        let Some(s) = location.to_str() else {
            return Ok(None);
        };
        match reid_data::loaders::url_scheme(s).as_deref() {
            None => Ok(None),
            Some("http" | "https") => Ok(Some(s)),
            Some(other) => Err(fetch_err(
                s,
                format!("the `{other}` scheme is not fetched: use http(s) URLs or paths"),
            )),
        }
    }

    fn mapped(&self, path: &Path) -> PathBuf {
        for (from, to) in &self.maps {
            if let Ok(rest) = path.strip_prefix(from) {
                return to.join(rest);
            }
        }
        path.to_path_buf()
    }

    fn download(&self, url: &str, file: &Path) -> Result<()> {
        let resp = self.agent.get(url).call().map_err(|e| match e {
            ureq::Error::Status(code, r) => {
                fetch_err(url, format!("HTTP {code} {}", r.status_text()))
            }
            ureq::Error::Transport(t) => fetch_err(url, t.to_string()),
        })?;
        let max = self.max_bytes;
        if let Some(n) = resp
            .header("Content-Length")
            .and_then(|v| v.trim().parse::<u64>().ok())
            && n > max
        {
            return Err(fetch_err(
                url,
                format!("{n} bytes, above the limit of {max} bytes"),
            ));
        }
        let mut body = resp.into_reader().take(max + 1);
        let mut too_big = false;
        let written = reid_core::fs::AtomicWrite::new()
            .durable(false)
            .create_dirs(true)
            .with(file, |w| {
                let n = std::io::copy(&mut body, w)?;
                if n > max {
                    too_big = true;
                    return Err(std::io::Error::other("too large"));
                }
                Ok(())
            });
        match written {
            Ok(()) => Ok(()),
            Err(_) if too_big => Err(fetch_err(
                url,
                format!("more than the limit of {max} bytes"),
            )),
            Err(e) => Err(fetch_err(url, e.to_string())),
        }
    }
}
