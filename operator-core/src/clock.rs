//! The time as Kubernetes stores it in conditions and statuses: to the second.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Now, to the second (as Kubernetes stores times).
pub fn now() -> Time {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap_or_default())
}
