//! `docs/security.md` states the bounds the operator applies to what a workload cluster answers
//! and to the render workers; this reads them from the code's constants, so the document cannot
//! say one thing while the code does another.

use std::path::Path;

use kaas_stack::sandbox::Limits;
use operator_core::workload_reads as reads;

/// 5000 as `5,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn the_security_document_states_the_bounds_the_code_has() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/security.md");
    let text = std::fs::read_to_string(path).expect("docs/security.md");
    // Line breaks and indentation are the document's layout, not its words.
    let doc = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let render = Limits::default();
    let stated = [
        format!("refused past {} MiB", reads::MAX_REPLY >> 20),
        format!("ends within {} s", reads::DEADLINE.as_secs()),
        format!("in pages of {}", reads::PAGE),
        format!(
            "refused past {} Nodes or {} StorageClasses",
            thousands(reads::MAX_NODES),
            thousands(reads::MAX_STORAGE_CLASSES)
        ),
        format!("`--render-memory-mib` ({})", render.memory >> 20),
        format!(
            "Every render has a {} s deadline and {} s of CPU",
            render.deadline.as_secs(),
            render.cpu.as_secs()
        ),
        format!("`--render-workers` ({})", render.workers),
        format!(
            "may render to {} MiB",
            kaas_stack::template::MAX_RENDER_OUTPUT >> 20
        ),
    ];
    let missing: Vec<&String> = stated
        .iter()
        .filter(|s| !doc.contains(s.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/security.md does not say {missing:?}"
    );
}

#[test]
fn thousands_are_grouped() {
    assert_eq!(thousands(500), "500");
    assert_eq!(thousands(5000), "5,000");
    assert_eq!(thousands(1_234_567), "1,234,567");
}
