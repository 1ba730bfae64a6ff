//! The deployed registrations carry a match condition the API server (1.28+) evaluates in CEL
//! before calling the webhooks: an update that leaves the spec as it was (a finalizer taken
//! off, a label) is not sent, so deletion never waits for this server. The 1.20 test server
//! cannot evaluate CEL, so the expression is evaluated here with a CEL interpreter, on the
//! requests the API server would make.

use kaas_webhooks::registration::{self, SPEC_CHANGES_ONLY, Target};
use serde_json::{Value, json};

fn sent(request: Value, object: Value, old: Value) -> bool {
    let program = cel_interpreter::Program::compile(SPEC_CHANGES_ONLY).expect("valid CEL");
    let mut ctx = cel_interpreter::Context::default();
    ctx.add_variable("request", request).expect("request");
    ctx.add_variable("object", object).expect("object");
    ctx.add_variable("oldObject", old).expect("oldObject");
    match program.execute(&ctx) {
        Ok(cel_interpreter::Value::Bool(b)) => b,
        other => panic!("the condition must give a bool, gave {other:?}"),
    }
}

#[test]
fn only_updates_that_change_the_spec_are_sent() {
    let spec =
        json!({"controlPlane": {"replicas": 3}, "workers": [{"name": "md-0", "replicas": 2}]});
    let meta = |finalizers: Value| json!({"name": "c", "finalizers": finalizers});
    let object =
        |finalizers: Value, spec: &Value| json!({"metadata": meta(finalizers), "spec": spec});
    let update = json!({"operation": "UPDATE"});

    // The operator takes its finalizer off a cluster being deleted: not sent.
    assert!(!sent(
        update.clone(),
        object(json!([]), &spec),
        object(json!(["kaas.scs.community/docker"]), &spec),
    ));
    // A user scales a pool: sent.
    let scaled =
        json!({"controlPlane": {"replicas": 3}, "workers": [{"name": "md-0", "replicas": 5}]});
    assert!(sent(
        update,
        object(json!([]), &scaled),
        object(json!([]), &spec)
    ));
    // Creates and deletes are always sent (DELETE has no object: only classes and stacks are
    // registered for it).
    assert!(sent(
        json!({"operation": "CREATE"}),
        object(json!([]), &spec),
        Value::Null
    ));
    assert!(sent(
        json!({"operation": "DELETE"}),
        Value::Null,
        object(json!([]), &spec)
    ));
}

#[test]
fn the_deployed_registrations_carry_the_condition_and_the_test_ones_do_not() {
    let service = Target::Service {
        namespace: "kaas-system".into(),
        name: "kaas-webhooks".into(),
    };
    for conditions in [
        registration::mutating(&service, None).webhooks.unwrap()[0]
            .match_conditions
            .clone(),
        registration::validating(&service, None).webhooks.unwrap()[0]
            .match_conditions
            .clone(),
    ] {
        let conditions = conditions.expect("match conditions");
        assert_eq!(conditions[0].expression, SPEC_CHANGES_ONLY);
    }
    let url = Target::Url("https://127.0.0.1:9443".into());
    assert!(
        registration::validating(&url, None).webhooks.unwrap()[0]
            .match_conditions
            .is_none()
    );
    let deployed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/webhooks/webhook-configurations.yaml"
    ))
    .unwrap();
    assert_eq!(deployed.matches("spec-changes-only").count(), 2);
}
