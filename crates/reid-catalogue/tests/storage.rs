//! Photos registered by URL: downloaded once into the cache, typed errors
//! naming the URL, a replaced object noticed; paths mapped per machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use reid_catalogue::CatalogueError;
use reid_catalogue::catalogue::content_hash;
use reid_catalogue::storage::{PhotoFetcher, is_url};
use reid_catalogue::testing::StaticHttp;

#[test]
fn a_url_is_downloaded_once_and_read_from_the_cache() {
    let served = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(served.path().join("cows")).unwrap();
    let bytes: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(served.path().join("cows/0001.JPG"), &bytes).unwrap();
    let server = StaticHttp::serve(served.path()).unwrap();
    let url = server.url("cows/0001.JPG");
    assert!(is_url(Path::new(&url)));
    let f = PhotoFetcher::new(cache.path().join("photos"));
    let local = f.local(Path::new(&url)).unwrap();
    assert_eq!(std::fs::read(&local).unwrap(), bytes);
    assert!(local.starts_with(cache.path()));
    assert_eq!(local.extension().unwrap(), "jpg");
    assert_eq!(server.requests(), 1);
    // Again: from the cache, no request.
    assert_eq!(f.local(Path::new(&url)).unwrap(), local);
    assert_eq!(server.requests(), 1);
    // Nothing but the one file in the cache (no temporary left).
    let names: Vec<_> = std::fs::read_dir(cache.path().join("photos"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn a_replaced_object_is_downloaded_again_and_its_new_hash_returned() {
    let served = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let file = served.path().join("a.png");
    std::fs::write(&file, b"first version").unwrap();
    let old = content_hash(&file).unwrap();
    let server = StaticHttp::serve(served.path()).unwrap();
    let url = server.url("a.png");
    let f = PhotoFetcher::new(cache.path());
    let (_, h) = f.local_with_hash(Path::new(&url), &old).unwrap();
    assert_eq!(h, old);
    assert_eq!(server.requests(), 1);
    std::fs::write(&file, b"second version").unwrap();
    let new = content_hash(&file).unwrap();
    // The cache still holds the first version: it agrees, no request.
    let (_, h) = f.local_with_hash(Path::new(&url), &old).unwrap();
    assert_eq!((h.as_str(), server.requests()), (old.as_str(), 1));
    // Expecting the new version: the stale copy is fetched again.
    let (local, h) = f.local_with_hash(Path::new(&url), &new).unwrap();
    assert_eq!(h, new);
    assert_eq!(std::fs::read(local).unwrap(), b"second version");
    assert_eq!(server.requests(), 2);
    // Nothing cached yet and the object differs from what was expected: one
    // download, its hash returned for the caller to compare, no second try.
    let fresh = PhotoFetcher::new(cache.path().join("other"));
    let (_, h) = fresh.local_with_hash(Path::new(&url), &old).unwrap();
    assert_eq!((h.as_str(), server.requests()), (new.as_str(), 3));
}

#[test]
fn failures_are_typed_errors_naming_the_url() {
    let served = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::write(served.path().join("big.jpg"), vec![1u8; 5000]).unwrap();
    let server = StaticHttp::serve(served.path()).unwrap();
    let f = PhotoFetcher::new(cache.path().join("p"));

    let missing = server.url("nope.jpg");
    match f.local(Path::new(&missing)).unwrap_err() {
        CatalogueError::Fetch { url, message } => {
            assert_eq!(url, missing);
            assert!(message.contains("404"), "{message}");
        }
        e => panic!("{e}"),
    }

    let big = server.url("big.jpg");
    let e = f
        .clone()
        .max_bytes(4999)
        .local(Path::new(&big))
        .unwrap_err();
    assert!(matches!(e, CatalogueError::Fetch { .. }), "{e}");
    assert!(e.to_string().contains("4999"), "{e}");
    assert!(
        !f.cached_path(&big).exists(),
        "a refused download is not cached"
    );
    // At the limit exactly it is fine.
    assert_eq!(
        std::fs::read(f.clone().max_bytes(5000).local(Path::new(&big)).unwrap())
            .unwrap()
            .len(),
        5000
    );

    let e = f.local(Path::new("s3://bucket/cow.jpg")).unwrap_err();
    assert!(e.to_string().contains("s3://bucket/cow.jpg"), "{e}");
    assert!(e.to_string().contains("`s3` scheme"), "{e}");

    // A server that is gone: a transport error naming the URL.
    let gone = server.url("big.jpg").replace("big", "gone");
    drop(server);
    let e = f.local(Path::new(&gone)).unwrap_err();
    assert!(matches!(e, CatalogueError::Fetch { .. }), "{e}");
    assert!(e.to_string().starts_with(&gone), "{e}");
}

#[test]
fn paths_are_mapped_by_whole_components_and_bad_maps_refused() {
    let f = PhotoFetcher::new("/tmp/unused")
        .map_spec("/data/photos=/mnt/nfs/photos")
        .unwrap();
    let local = |p: &str| f.local(Path::new(p)).unwrap();
    assert_eq!(
        local("/data/photos/a/b.jpg"),
        Path::new("/mnt/nfs/photos/a/b.jpg")
    );
    assert_eq!(
        local("/data/photos-old/b.jpg"),
        Path::new("/data/photos-old/b.jpg")
    );
    assert_eq!(local("rel/c.jpg"), Path::new("rel/c.jpg"));
    for bad in ["/data", "=/mnt", "/data=", ""] {
        let e = PhotoFetcher::new("/tmp/unused").map_spec(bad).unwrap_err();
        assert!(e.to_string().contains("FROM=TO"), "{bad}: {e}");
    }
    assert!(!is_url(Path::new("/data/x.jpg")));
    assert!(!is_url(Path::new("C:/x.jpg")));
    assert!(is_url(Path::new("HTTPS://Example.org/x.jpg")));
    // Query strings do not leak into the cached name's extension.
    let c = PhotoFetcher::new("/c").cached_path("https://h/x/photo.jpeg?sig=abc.def");
    assert_eq!(c.extension().unwrap(), "jpeg");
    let c = PhotoFetcher::new("/c").cached_path("https://h/x/photo");
    assert!(c.extension().is_none());
}
