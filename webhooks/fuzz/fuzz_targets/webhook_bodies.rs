//! Arbitrary bytes as the body of `/mutate`, `/validate` or `/convert` (the first byte picks
//! which). Whatever arrives, the answer is a 200 or 400 carrying a well-formed review, and
//! nothing panics.

#![no_main]

use std::sync::OnceLock;

use kaas_webhooks::admission::{Endpoint, admit};
use kaas_webhooks::cache::CatalogCache;

fn cache() -> &'static CatalogCache {
    static CACHE: OnceLock<CatalogCache> = OnceLock::new();
    CACHE.get_or_init(|| {
        let text = include_str!("../../../api/tests/fixtures/catalog.yaml");
        let catalog = api::Catalog::from_yaml(text).expect("catalog fixture parses");
        CatalogCache::fixed(&catalog)
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = data.split_first() else {
        return;
    };
    let (status, reply, review_kind) = match selector % 3 {
        0 | 1 => {
            let endpoint = if selector % 3 == 0 { Endpoint::Mutate } else { Endpoint::Validate };
            let answer = runtime().block_on(admit(endpoint, body, cache()));
            (answer.status, answer.body, "AdmissionReview")
        }
        _ => {
            let answer = kaas_webhooks::convert::convert(body);
            (answer.status, answer.body, "ConversionReview")
        }
    };
    assert!(status == 200 || status == 400, "status {status}");
    assert_eq!(reply["kind"], review_kind, "{reply}");
    assert!(reply["response"].is_object(), "{reply}");
});
