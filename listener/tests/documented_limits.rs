//! `docs/security.md` states each listener's bounds in a table; the figures must be the
//! code's (`Limits::WEBHOOK` and `Limits::ADMIN`), so the document cannot drift from them.

use kaas_listener::Limits;

#[test]
fn the_security_document_states_the_listeners_limits_the_code_has() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/security.md"))
        .expect("docs/security.md");
    let (w, a) = (Limits::WEBHOOK, Limits::ADMIN);
    let rows = [
        format!(
            "| connections served at once | {} (`--max-connections`) | {} |",
            w.max_connections, a.max_connections
        ),
        format!(
            "| TLS handshake | {} s | {} s |",
            w.handshake.as_secs(),
            a.handshake.as_secs()
        ),
        format!(
            "| a request's headers, and the wait for the next request | {} s | {} s |",
            w.header_read.as_secs(),
            a.header_read.as_secs()
        ),
        format!(
            "| a whole request, body included (then 408 and close) | {} s | {} s |",
            w.request.as_secs(),
            a.request.as_secs()
        ),
        format!(
            "| a connection's life (then closed gracefully) | {} s | {} s |",
            w.max_age.as_secs(),
            a.max_age.as_secs()
        ),
        format!(
            "| HTTP/2 streams per connection | {} | {} |",
            w.h2_max_streams, a.h2_max_streams
        ),
    ];
    let missing: Vec<&String> = rows.iter().filter(|r| !doc.contains(r.as_str())).collect();
    assert!(
        missing.is_empty(),
        "docs/security.md does not state these bounds as the code has them:\n{}",
        missing
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}
