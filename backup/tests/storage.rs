//! The S3 client against a real S3-compatible server (SeaweedFS, `kaas_testenv::s3`): objects
//! written, read back, listed and deleted; a multipart upload of more than one part reads back
//! whole; an answer larger than allowed is refused; and one cluster's credential, scoped to its
//! prefix, can neither read, list, overwrite nor delete another cluster's backups.

use anyhow::Result;
use bytes::Bytes;
use kaas_backup::s3::{Bucket, Credentials, Error, PART};
use kaas_testenv::s3::{Identity, S3};

fn bucket(s3: &S3, identity: &Identity) -> Result<Bucket> {
    Ok(Bucket::new(
        s3.endpoint(),
        "backups",
        Credentials {
            access_key: identity.access_key.clone(),
            secret_key: identity.secret_key.clone(),
            region: "us-east-1".into(),
        },
        None,
    )?)
}

fn denied(result: Result<impl std::fmt::Debug, Error>, what: &str) {
    match result {
        Err(Error::Refused { status: 403, .. }) => {}
        other => panic!("{what}: expected a 403 refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn objects_round_trip_and_a_cluster_reaches_only_its_own_prefix() -> Result<()> {
    let admin = Identity::new("admin", &["Admin", "Read", "Write", "List", "Tagging"]);
    let scoped = |name: &str, prefix: &str| {
        Identity::new(
            name,
            &[
                &format!("Read:backups/{prefix}/*"),
                &format!("Write:backups/{prefix}/*"),
                &format!("List:backups/{prefix}/*"),
            ],
        )
    };
    let a = scoped("cluster-a", "tenant-a/prod");
    let b = scoped("cluster-b", "tenant-b/prod");
    let s3 = S3::start(&[admin.clone(), a.clone(), b.clone()]).await?;
    let admin = bucket(&s3, &admin)?;
    admin.create().await?;
    let (a, b) = (bucket(&s3, &a)?, bucket(&s3, &b)?);

    // Cluster a: put, get, list, delete under its prefix.
    a.put("tenant-a/prod/1.json", Bytes::from_static(b"{\"n\":1}"))
        .await?;
    assert_eq!(
        &a.get("tenant-a/prod/1.json", 1024).await?[..],
        b"{\"n\":1}"
    );
    // A multipart upload of two and a half parts.
    let big: Vec<u8> = (0..PART * 5 / 2).map(|i| (i % 251) as u8).collect();
    let mut upload = a.upload("tenant-a/prod/2.db").await?;
    for chunk in big.chunks(1 << 20) {
        upload.write(chunk).await?;
    }
    assert_eq!(upload.finish().await?, big.len() as u64);
    assert_eq!(
        a.get("tenant-a/prod/2.db", big.len()).await?.len(),
        big.len()
    );
    assert!(
        a.get("tenant-a/prod/2.db", big.len() - 1)
            .await
            .is_err_and(|e| matches!(e, Error::TooLarge { .. }))
    );
    let listed = a.list("tenant-a/prod/").await?;
    let keys: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["tenant-a/prod/1.json", "tenant-a/prod/2.db"]);
    assert_eq!(listed[1].size, big.len() as u64);

    // Cluster b: nothing of a's.
    denied(
        b.get("tenant-a/prod/1.json", 1024).await,
        "b reads a's backup",
    );
    denied(b.list("tenant-a/prod/").await, "b lists a's backups");
    denied(
        b.delete("tenant-a/prod/1.json").await,
        "b deletes a's backup",
    );
    denied(
        b.put("tenant-a/prod/1.json", Bytes::from_static(b"forged"))
            .await,
        "b overwrites a's backup",
    );
    denied(
        b.upload("tenant-a/prod/3.db").await,
        "b uploads into a's prefix",
    );
    assert_eq!(
        &admin.get("tenant-a/prod/1.json", 1024).await?[..],
        b"{\"n\":1}"
    );
    // ... and its own prefix works.
    b.put("tenant-b/prod/1.json", Bytes::from_static(b"b"))
        .await?;
    denied(
        a.get("tenant-b/prod/1.json", 1024).await,
        "a reads b's backup",
    );

    a.delete("tenant-a/prod/1.json").await?;
    assert_eq!(a.list("tenant-a/prod/").await?.len(), 1);
    Ok(())
}
