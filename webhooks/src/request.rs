//! The AdmissionReview request as admission reads it, in one pass over the body: the
//! envelope's few fields, and a `KaasCluster`'s object and old object straight into the forms
//! the shared rules take (the API server names the kind before the objects). Objects of the
//! other kinds, or of a review that names its kind last, stay raw JSON until a rule asks for
//! their type. A review whose typed object does not fit is read once more with every object
//! raw, so that the rule parsing it names the bad field in its answer.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use api::Previous;
use api::v1beta1::{KaasCluster, KaasClusterSpec};
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// An `AdmissionReview` as the API server sends it, borrowed from the body.
#[derive(Debug)]
pub struct Review<'a> {
    /// `admission.k8s.io/v1` (or `v1beta1` from old API servers).
    pub api_version: Option<Cow<'a, str>>,
    /// `AdmissionReview`.
    pub kind: Option<Cow<'a, str>>,
    /// The request; absent in a malformed review.
    pub request: Option<Request<'a>>,
}

/// Reads a review from `body`: typed in one pass where it can be, else with its objects raw.
pub fn parse(body: &[u8]) -> serde_json::Result<Review<'_>> {
    parse_as::<true>(body).or_else(|_| parse_as::<false>(body))
}

fn parse_as<const TYPED: bool>(body: &[u8]) -> serde_json::Result<Review<'_>> {
    let envelope: Envelope<'_, TYPED> = serde_json::from_slice(body)?;
    Ok(Review {
        api_version: envelope.api_version.map(|t| t.0),
        kind: envelope.kind.map(|t| t.0),
        request: envelope.request.map(|r| r.0),
    })
}

/// The group, version and kind of the object under admission.
#[derive(Debug, Deserialize, Default)]
pub struct Gvk<'a> {
    /// API group.
    #[serde(default, borrow)]
    pub group: Cow<'a, str>,
    /// API version.
    #[serde(default, borrow)]
    pub version: Cow<'a, str>,
    /// Kind.
    #[serde(default, borrow)]
    pub kind: Cow<'a, str>,
}

impl Gvk<'_> {
    /// Whether this names the storage version of `KaasCluster`, whose objects are read typed.
    pub fn is_cluster(&self) -> bool {
        self.group == api::GROUP && self.version == "v1beta1" && self.kind == "KaasCluster"
    }
}

/// An admission request.
#[derive(Debug)]
pub struct Request<'a> {
    /// Echoed in the response.
    pub uid: Cow<'a, str>,
    /// Kind of the object (in the version the webhook is registered for).
    pub kind: Gvk<'a>,
    /// CREATE, UPDATE, DELETE or CONNECT.
    pub operation: Cow<'a, str>,
    /// The object's namespace (empty for cluster-scoped kinds).
    pub namespace: Cow<'a, str>,
    /// The object's name (empty on a create that asks for a generated name).
    pub name: Cow<'a, str>,
    /// The subresource, when the request is for one.
    pub sub_resource: Option<Cow<'a, str>>,
    /// The object as it would be stored.
    pub object: Option<Object<'a>>,
    /// The object as it is stored (UPDATE, DELETE).
    pub old_object: Option<Object<'a>>,
    /// Whether nothing the request leads to will be stored (no usage is reserved for it).
    pub dry_run: bool,
    /// The field manager the request names (`options.fieldManager`), if any.
    pub field_manager: Option<Cow<'a, str>>,
}

/// What admission reads of a request's options.
#[derive(Deserialize)]
struct Options<'a> {
    #[serde(borrow, default, rename = "fieldManager")]
    field_manager: Option<Text<'a>>,
}

/// An object of the request, typed or still raw.
#[derive(Debug)]
pub enum Object<'a> {
    /// A `KaasCluster` under admission, with what the rules read of it ([`AdmittedCluster`]).
    Cluster(Box<KaasCluster>),
    /// A stored `KaasCluster`, as far as an update is judged against it.
    Previous(Box<Previous>),
    /// Not parsed yet.
    Raw(&'a RawValue),
}

impl<'a> Object<'a> {
    /// The raw JSON, for a kind that is not read in the first pass.
    pub fn raw(&self) -> Option<&'a RawValue> {
        match self {
            Object::Raw(raw) => Some(raw),
            _ => None,
        }
    }
}

/// The parts of a `KaasCluster` under admission the shared rules of `api` read: the name
/// (validation names it), whether it is being deleted, and the spec. The rest (labels,
/// annotations, managed fields, the status) is skipped unparsed; what an update is compared
/// with comes from the old object as [`Previous`]. A rule that reads more of the new object
/// must add it here; the admission fixtures include a full stored object to catch that.
#[derive(Debug, Deserialize)]
pub struct AdmittedCluster {
    #[serde(default)]
    metadata: AdmittedMeta,
    spec: KaasClusterSpec,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AdmittedMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    deletion_timestamp: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

impl From<AdmittedCluster> for KaasCluster {
    fn from(admitted: AdmittedCluster) -> Self {
        let mut cluster = KaasCluster::new(
            admitted.metadata.name.as_deref().unwrap_or_default(),
            admitted.spec,
        );
        cluster.metadata.name = admitted.metadata.name;
        cluster.metadata.namespace = admitted.metadata.namespace;
        cluster.metadata.deletion_timestamp = admitted.metadata.deletion_timestamp;
        cluster
    }
}

/// A string borrowed from the body unless it holds escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// The review's top level; `TYPED` says whether a `KaasCluster`'s objects are read typed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a, const TYPED: bool> {
    #[serde(default, borrow)]
    api_version: Option<Text<'a>>,
    #[serde(default, borrow)]
    kind: Option<Text<'a>>,
    #[serde(default, borrow)]
    request: Option<RequestIn<'a, TYPED>>,
}

struct RequestIn<'a, const TYPED: bool>(Request<'a>);

/// The request fields admission reads; every other one is skipped.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum Field {
    Uid,
    Kind,
    Operation,
    Namespace,
    Name,
    SubResource,
    Object,
    OldObject,
    DryRun,
    Options,
    #[serde(other)]
    Other,
}

impl<'de: 'a, 'a, const TYPED: bool> Deserialize<'de> for RequestIn<'a, TYPED> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RequestVisitor::<TYPED>(PhantomData))
    }
}

struct RequestVisitor<'a, const TYPED: bool>(PhantomData<&'a ()>);

impl<'de: 'a, 'a, const TYPED: bool> Visitor<'de> for RequestVisitor<'a, TYPED> {
    type Value = RequestIn<'a, TYPED>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an admission request")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut uid = None;
        let mut kind = Gvk::default();
        let mut operation = Cow::Borrowed("");
        let mut namespace = Cow::Borrowed("");
        let mut name = Cow::Borrowed("");
        let mut sub_resource = None;
        let mut object = None;
        let mut old_object = None;
        let mut dry_run = false;
        let mut field_manager = None;
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Uid => uid = Some(map.next_value::<Text<'de>>()?.0),
                Field::Kind => kind = map.next_value()?,
                Field::Operation => operation = map.next_value::<Text<'de>>()?.0,
                Field::Namespace => namespace = map.next_value::<Text<'de>>()?.0,
                Field::Name => name = map.next_value::<Text<'de>>()?.0,
                Field::SubResource => {
                    sub_resource = map.next_value::<Option<Text<'de>>>()?.map(|t| t.0);
                }
                Field::Object if TYPED && kind.is_cluster() => {
                    object = map
                        .next_value::<Option<AdmittedCluster>>()?
                        .map(|c| Object::Cluster(Box::new(c.into())));
                }
                Field::OldObject if TYPED && kind.is_cluster() => {
                    old_object = map
                        .next_value::<Option<Previous>>()?
                        .map(|p| Object::Previous(Box::new(p)));
                }
                Field::Object => object = map.next_value::<Option<&RawValue>>()?.map(Object::Raw),
                Field::OldObject => {
                    old_object = map.next_value::<Option<&RawValue>>()?.map(Object::Raw);
                }
                Field::DryRun => dry_run = map.next_value::<Option<bool>>()?.unwrap_or(false),
                Field::Options => {
                    field_manager = map
                        .next_value::<Option<Options<'de>>>()?
                        .and_then(|o| o.field_manager)
                        .map(|t| t.0);
                }
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(RequestIn(Request {
            uid: uid.ok_or_else(|| de::Error::missing_field("uid"))?,
            kind,
            operation,
            namespace,
            name,
            sub_resource,
            object,
            old_object,
            dry_run,
            field_manager,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A review with the request's fields in the order given (the kind before or after the
    /// objects).
    fn review(kind_first: bool, object: serde_json::Value) -> Vec<u8> {
        let kind =
            r#""kind":{"group":"kaas.scs.community","version":"v1beta1","kind":"KaasCluster"}"#;
        let old = json!({"metadata": {"name": "a"},
                         "spec": {"clusterStack": {"name": "scs", "version": "1.0.0"}},
                         "status": {"kubernetesVersion": "1.33.4"}});
        let objects = format!(r#""object":{object},"oldObject":{old}"#);
        let (first, last) = if kind_first {
            (kind.to_string(), objects)
        } else {
            (objects, kind.to_string())
        };
        format!(r#"{{"request":{{"uid":"u1","operation":"UPDATE",{first},{last}}}}}"#).into_bytes()
    }

    fn cluster() -> serde_json::Value {
        json!({"metadata": {"name": "a", "managedFields": [{"manager": "x"}]},
               "spec": {"clusterStack": {"name": "scs"}, "workers": [{"name": "md-0", "replicas": 1, "machineType": "m"}]}})
    }

    #[test]
    fn a_cluster_named_first_is_read_typed_in_one_pass() {
        let body = review(true, cluster());
        let request = parse(&body).expect("parses").request.expect("request");
        assert_eq!(request.uid, "u1");
        let Some(Object::Cluster(c)) = request.object else {
            panic!("object not typed: {:?}", request.object);
        };
        assert_eq!(c.spec.workers[0].name, "md-0");
        assert_eq!(c.metadata.name.as_deref(), Some("a"));
        let Some(Object::Previous(p)) = request.old_object else {
            panic!("old object not typed");
        };
        assert_eq!(p.running_version.as_deref(), Some("1.33.4"));
    }

    #[test]
    fn a_review_naming_its_kind_last_keeps_objects_raw() {
        let body = review(false, cluster());
        let request = parse(&body).expect("parses").request.expect("request");
        assert_eq!(request.kind.kind, "KaasCluster");
        assert!(request.object.as_ref().and_then(Object::raw).is_some());
    }

    #[test]
    fn an_object_that_does_not_fit_is_read_raw_for_its_rule_to_name() {
        let mut bad = cluster();
        bad["spec"]["workers"][0]["replicas"] = json!("three");
        let body = review(true, bad);
        let request = parse(&body).expect("parses").request.expect("request");
        let raw = request.object.as_ref().and_then(Object::raw).expect("raw");
        assert!(raw.get().contains("three"));
    }

    #[test]
    fn a_request_without_uid_is_refused() {
        let err = parse(br#"{"request": {"operation": "CREATE"}}"#).expect_err("no uid");
        assert!(err.to_string().contains("uid"), "{err}");
    }
}
