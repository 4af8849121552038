//! `hf:<owner>/<name>` CLIP models: downloaded from a Hub endpoint into the Hugging Face cache
//! layout, then loaded from the cache with no network. The endpoint is a small HTTP server in
//! this test serving the transformers fixtures the way the Hub's `resolve/main` URLs do.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::{fixtures, floats, max_abs_diff, reference};
use rlrt_rewards::clip::{hub, ClipModel, CpuBackend};

/// Serves `/<owner>/<name>/resolve/main/<file>` from the fixtures folder with an
/// `x-repo-commit` header; any other path is a 404. Counts the files served.
fn serve() -> (String, Arc<AtomicUsize>) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", server.server_addr().to_ip().unwrap());
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let file = request
                .url()
                .strip_prefix("/test-owner/tiny-clip/resolve/main/");
            let body = file.and_then(|f| std::fs::read(fixtures().join(f)).ok());
            let (status, body) = match body {
                Some(b) => {
                    count.fetch_add(1, Ordering::SeqCst);
                    (200, b)
                }
                None => (404, b"not found".to_vec()),
            };
            let commit: tiny_http::Header = "x-repo-commit: 0123abcd".parse().unwrap();
            let response = tiny_http::Response::from_data(body)
                .with_status_code(status)
                .with_header(commit);
            let _ = request.respond(response);
        }
    });
    (endpoint, served)
}

#[test]
fn a_hub_model_is_downloaded_once_into_the_cache_and_matches_the_folder() {
    let (endpoint, served) = serve();
    let cache = tempfile::tempdir().unwrap();

    let folder = hub::resolve("test-owner/tiny-clip", cache.path(), &endpoint, None).unwrap();
    assert_eq!(
        folder,
        cache
            .path()
            .join("models--test-owner--tiny-clip/snapshots/0123abcd")
    );
    assert_eq!(served.load(Ordering::SeqCst), hub::FILES.len());
    assert_eq!(
        std::fs::read_to_string(cache.path().join("models--test-owner--tiny-clip/refs/main"))
            .unwrap(),
        "0123abcd"
    );
    for file in hub::FILES {
        assert_eq!(
            std::fs::read(folder.join(file)).unwrap(),
            std::fs::read(fixtures().join(file)).unwrap(),
            "{file}"
        );
    }

    // The cached model loads and embeds like the transformers fixtures.
    let model = ClipModel::<CpuBackend>::load(&folder, &Default::default()).unwrap();
    let texts = reference()["texts"].as_array().unwrap().clone();
    let prompt = texts[0]["prompt"].as_str().unwrap();
    let got = model.embed_texts(&[prompt]).unwrap().remove(0);
    assert!(max_abs_diff(&got, &floats(&texts[0]["embedding"])) <= 1e-4);

    // A second resolve is served from the cache, even with no endpoint at all.
    let again = hub::resolve(
        "test-owner/tiny-clip",
        cache.path(),
        "http://127.0.0.1:1",
        None,
    )
    .unwrap();
    assert_eq!(again, folder);
    assert_eq!(served.load(Ordering::SeqCst), hub::FILES.len());

    // An id the endpoint lacks: an error naming it, the cache and what to do; nothing cached.
    let e = hub::resolve("test-owner/absent", cache.path(), &endpoint, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("hf:test-owner/absent"), "{e}");
    assert!(e.contains("HTTP 404"), "{e}");
    assert!(e.contains("huggingface-cli download"), "{e}");
    assert!(!cache
        .path()
        .join("models--test-owner--absent/refs")
        .exists());

    // Malformed ids are refused before any request.
    for bad in ["no-slash", "a/b/c", "../x", "a/", "owner/na me"] {
        let e = hub::resolve(bad, cache.path(), &endpoint, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected hf:<owner>/<name>"), "{bad}: {e}");
    }

    // A plain path is not a Hub id.
    assert_eq!(hub::locate(&fixtures()).unwrap(), fixtures());
}
