//! Access control (a table of allow / deny / default-deny / precedence cases
//! over every access type, list filtering, durable policies) and
//! encryption (at rest per storage type, and of application data).

use std::sync::Arc;

use strata::engine::MemoryKeyProvider;
use strata::{
    AccessPolicy, AccessType, DeleteOptions, Effect, EncryptionConfig, EncryptionContext,
    EncryptionError, Identity, KeyPattern, Principal, RetrieveOptions, StorageError, StorageKey,
    StorageOptions, StorageSystem, StorageSystemConfig, StorageType,
};

fn key(s: &str) -> StorageKey {
    StorageKey::new(s)
}

fn policy(
    id: &str,
    effect: Effect,
    principals: Vec<Principal>,
    types: Vec<StorageType>,
    pattern: &str,
    access: Vec<AccessType>,
) -> AccessPolicy {
    AccessPolicy {
        id: id.into(),
        effect,
        principals,
        storage_types: types,
        key_pattern: pattern.into(),
        access,
    }
}

fn policies() -> Vec<AccessPolicy> {
    use AccessType::*;
    vec![
        // Readers (by attribute) may read and list public resources.
        policy(
            "readers",
            Effect::Allow,
            vec![Principal::Attribute {
                name: "role".into(),
                value: "reader".into(),
            }],
            vec![StorageType::Resource],
            "public/*",
            vec![Read, List],
        ),
        // Alice may do anything on resources...
        policy(
            "alice-all",
            Effect::Allow,
            vec![Principal::Identity("alice".into())],
            vec![StorageType::Resource],
            "*",
            vec![Read, Write, Delete, List, Admin],
        ),
        // ...except touch secrets, which nobody may read: deny wins.
        policy(
            "no-secrets",
            Effect::Deny,
            vec![Principal::Any],
            vec![],
            "public/secret*",
            vec![Read, Write, Delete],
        ),
        // Facts: bob may write but not delete (no policy says delete).
        policy(
            "bob-facts",
            Effect::Allow,
            vec![Principal::Identity("bob".into())],
            vec![StorageType::Fact],
            "*",
            vec![Write, Read],
        ),
    ]
}

#[test]
fn access_decisions_follow_allow_deny_default_deny_and_precedence() {
    use AccessType::*;
    let dir = tempfile::tempdir().unwrap();
    let storage = StorageSystem::builder()
        .path(dir.path())
        .with_access_policies(policies())
        .build()
        .unwrap();
    let alice = Identity::new("alice");
    let bob = Identity::new("bob");
    let reader = Identity::new("carol").with_attribute("role", "reader");
    let nobody = Identity::new("mallory");
    let r = StorageType::Resource;
    let f = StorageType::Fact;
    // identity, type, key, access, allowed
    let table: Vec<(&Identity, StorageType, &str, AccessType, bool)> = vec![
        (&alice, r, "public/a", Read, true),
        (&alice, r, "public/a", Write, true),
        (&alice, r, "public/a", Delete, true),
        (&alice, r, "public/a", List, true),
        (&alice, r, "private/a", Admin, true),
        (&alice, r, "public/secret1", Read, false), // deny beats allow
        (&alice, r, "public/secret1", Write, false),
        (&alice, r, "public/secret1", Delete, false),
        (&alice, r, "public/secret1", List, true), // the deny does not cover List
        (&alice, f, "x", Read, false),             // default deny: no policy for facts
        (&reader, r, "public/a", Read, true),
        (&reader, r, "public/a", List, true),
        (&reader, r, "public/a", Write, false),
        (&reader, r, "public/a", Delete, false),
        (&reader, r, "private/a", Read, false),
        (&reader, r, "public/secret", Read, false),
        (&bob, f, "fact/1", Write, true),
        (&bob, f, "fact/1", Read, true),
        (&bob, f, "fact/1", Delete, false),
        (&bob, f, "fact/1", List, false),
        (&bob, r, "public/a", Read, false),
        (&nobody, r, "public/a", Read, false),
        (&nobody, f, "fact/1", Write, false),
        (&nobody, r, "public/a", Admin, false),
    ];
    let ac = storage.access_control().unwrap();
    for (who, t, k, access, allowed) in &table {
        let d = ac.check_access(who, *t, k, *access).unwrap();
        assert_eq!(
            d.is_allowed(),
            *allowed,
            "{} {t} {k} {access:?}: {d:?}",
            who.id
        );
    }

    // The same table through identity-scoped providers: every call checked.
    let admin = storage.get_provider(StorageType::Resource).unwrap();
    let facts_admin = storage.get_provider(StorageType::Fact).unwrap();
    for k in ["public/a", "public/secret1", "private/a", "public/b"] {
        admin.store(&key(k), b"v", &StorageOptions::new()).unwrap();
    }
    facts_admin
        .store(&key("fact/1"), b"v", &StorageOptions::new())
        .unwrap();
    for (who, t, k, access, allowed) in &table {
        let p = storage.as_identity(who).get_provider(*t).unwrap();
        let k = key(k);
        let outcome = match access {
            Read => p.retrieve(&k, &RetrieveOptions::new()).map(|_| ()),
            Write => p.store(&k, b"v", &StorageOptions::new()).map(|_| ()),
            Delete => p.delete(&k, &DeleteOptions::new()),
            List => p.list_keys(&KeyPattern::prefix(k.as_str())).map(|_| ()),
            Admin => continue,
        };
        match outcome {
            Ok(()) => assert!(*allowed, "{} {t} {k} {access:?} went through", who.id),
            Err(StorageError::AccessDenied {
                key: denied,
                access: a,
                ..
            }) => {
                assert!(!*allowed, "{} {t} {k} {access:?} denied", who.id);
                assert_eq!(a, *access);
                assert!(
                    denied.as_str().starts_with(k.as_str())
                        || k.as_str().starts_with(denied.as_str())
                );
            }
            Err(e) => {
                // Allowed, and the item may be gone by now (deleted above).
                assert!(*allowed && matches!(e, StorageError::NotFound(_)), "{e}");
            }
        }
        // Restore what a delete removed.
        if *access == Delete && *allowed {
            let admin = storage.get_provider(*t).unwrap();
            admin.store(&k, b"v", &StorageOptions::new()).unwrap();
        }
    }
}

#[test]
fn listing_leaves_out_what_the_identity_may_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let storage = StorageSystem::builder()
        .path(dir.path())
        .with_access_policies(policies())
        .build()
        .unwrap();
    let admin = storage.get_provider(StorageType::Resource).unwrap();
    for i in 0..1500 {
        admin
            .store(
                &key(&format!("public/{i:04}")),
                b"v",
                &StorageOptions::new(),
            )
            .unwrap();
    }
    for k in ["public/secret-a", "public/secret-b"] {
        admin.store(&key(k), b"v", &StorageOptions::new()).unwrap();
    }
    let reader = Identity::new("carol").with_attribute("role", "reader");
    let p = storage
        .as_identity(&reader)
        .get_provider(StorageType::Resource)
        .unwrap();
    let keys = p.list_keys(&KeyPattern::prefix("public/")).unwrap();
    assert_eq!(
        keys.len(),
        1500,
        "the secrets are left out, across internal pages"
    );
    assert!(keys.iter().all(|k| !k.as_str().contains("secret")));
    let limited = p
        .list_keys(&KeyPattern::prefix("public/").with_limit(10))
        .unwrap();
    assert_eq!(limited.len(), 10);
    // Listing outside what List covers is refused.
    let err = p.list_keys(&KeyPattern::prefix("private/")).unwrap_err();
    assert!(matches!(
        err,
        StorageError::AccessDenied {
            access: AccessType::List,
            ..
        }
    ));
    // Policies are not visible as registry items.
    let registry = storage.get_provider(StorageType::Registry).unwrap();
    assert!(registry.list_keys(&KeyPattern::all()).unwrap().is_empty());
}

#[test]
fn policies_are_durable_and_changes_take_effect_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let dave = Identity::new("dave");
    {
        let storage = StorageSystem::builder()
            .path(dir.path())
            .with_access_policies(policies())
            .build()
            .unwrap();
        let ac = storage.access_control().unwrap();
        assert!(!ac
            .check_access(&dave, StorageType::Metadata, "m", AccessType::Read)
            .unwrap()
            .is_allowed());
        ac.policies()
            .put_policy(policy(
                "dave",
                Effect::Allow,
                vec![Principal::Identity("dave".into())],
                vec![StorageType::Metadata],
                "*",
                vec![AccessType::Read],
            ))
            .unwrap();
        // The cached decision was dropped.
        assert!(ac
            .check_access(&dave, StorageType::Metadata, "m", AccessType::Read)
            .unwrap()
            .is_allowed());
        storage.close().unwrap();
    }
    let config = StorageSystemConfig {
        access_control: true,
        ..Default::default()
    };
    let storage = StorageSystem::builder()
        .path(dir.path())
        .with_config(config)
        .build()
        .unwrap();
    let ac = storage.access_control().unwrap();
    assert!(ac
        .check_access(&dave, StorageType::Metadata, "m", AccessType::Read)
        .unwrap()
        .is_allowed());
    assert!(ac.policies().remove_policy("dave").unwrap());
    assert!(!ac
        .check_access(&dave, StorageType::Metadata, "m", AccessType::Read)
        .unwrap()
        .is_allowed());
    // Without access control, identity providers allow everything.
    let open = tempfile::tempdir().unwrap();
    let plain = StorageSystem::open(open.path()).unwrap();
    let p = plain
        .as_identity(&dave)
        .get_provider(StorageType::Fact)
        .unwrap();
    p.store(&key("k"), b"v", &StorageOptions::new()).unwrap();
}

#[test]
fn encryption_at_rest_per_storage_type() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageSystemConfig {
        encryption: EncryptionConfig {
            encrypted_types: Some(vec![StorageType::Resource, StorageType::Blob]),
        },
        ..Default::default()
    };
    let storage = StorageSystem::builder()
        .path(dir.path())
        .with_config(config)
        .with_key_provider(Arc::new(MemoryKeyProvider::new(3, [7; 32])))
        .build()
        .unwrap();
    let enc = storage.encryption();
    assert!(enc.is_encrypted(StorageType::Resource));
    assert!(!enc.is_encrypted(StorageType::Fact));
    let resources = storage.get_provider(StorageType::Resource).unwrap();
    let facts = storage.get_provider(StorageType::Fact).unwrap();
    let secret = b"the-secret-marker-0123456789".repeat(50);
    resources
        .store(
            &key("r"),
            &secret,
            &StorageOptions::new().with_encryption(true),
        )
        .unwrap();
    let err = facts
        .store(
            &key("f"),
            &secret,
            &StorageOptions::new().with_encryption(true),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        StorageError::Encryption(EncryptionError::NotEncrypted(StorageType::Fact))
    ));
    facts
        .store(&key("plain"), b"public-marker", &StorageOptions::new())
        .unwrap();
    storage.db().flush().unwrap();
    storage.close().unwrap();
    // The secret is in no file in the clear; the plaintext type's data is.
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir.path()).unwrap() {
        all.extend(std::fs::read(e.unwrap().path()).unwrap());
    }
    let find = |needle: &[u8]| all.windows(needle.len()).any(|w| w == needle);
    assert!(!find(b"the-secret-marker"));
    assert!(find(b"public-marker"));
}

#[test]
fn application_data_encryption_with_associated_data_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(MemoryKeyProvider::new(1, [1; 32]));
    let storage = StorageSystem::builder()
        .path(dir.path())
        .with_key_provider(keys.clone())
        .build()
        .unwrap();
    let enc = storage.encryption();
    let ctx = EncryptionContext {
        additional_data: Some(b"account 42".to_vec()),
        ..Default::default()
    };
    let sealed = enc.encrypt(b"balance: 100", &ctx).unwrap();
    assert_eq!(sealed.key_id, 1);
    assert!(!sealed.ciphertext.windows(7).any(|w| w == b"balance"));
    assert_eq!(enc.decrypt(&sealed, None).unwrap(), b"balance: 100");
    // Other associated data, a flipped bit, another key: refused.
    assert_eq!(
        enc.decrypt(&sealed, Some(b"account 43")),
        Err(EncryptionError::DecryptFailed)
    );
    let mut tampered = sealed.clone();
    tampered.ciphertext[14] ^= 1;
    assert_eq!(
        enc.decrypt(&tampered, None),
        Err(EncryptionError::DecryptFailed)
    );
    let mut wrong = sealed.clone();
    wrong.key_id = 2;
    assert_eq!(
        enc.decrypt(&wrong, None),
        Err(EncryptionError::MissingKey(2))
    );
    // Two seals of the same data differ (random nonces).
    assert_ne!(
        enc.encrypt(b"balance: 100", &ctx).unwrap().ciphertext,
        sealed.ciphertext
    );
    // Rotation: new data under key 2, old data still opens under key 1.
    keys.add_key(2, [2; 32]);
    keys.set_current(2).unwrap();
    let newer = enc.encrypt(b"x", &EncryptionContext::default()).unwrap();
    assert_eq!(newer.key_id, 2);
    assert_eq!(enc.decrypt(&sealed, None).unwrap(), b"balance: 100");
    // Serde round trip of the sealed form.
    let json = serde_json::to_string(&sealed).unwrap();
    let back: strata::EncryptedData = serde_json::from_str(&json).unwrap();
    assert_eq!(enc.decrypt(&back, None).unwrap(), b"balance: 100");
    // Without a key provider there is nothing to encrypt with.
    let other = tempfile::tempdir().unwrap();
    let plain = StorageSystem::open(other.path()).unwrap();
    assert_eq!(
        plain.encryption().encrypt(b"x", &ctx).unwrap_err(),
        EncryptionError::NoKeyProvider
    );
}

#[test]
fn a_deny_on_a_deeper_pattern_hides_keys_from_a_broader_listing() {
    use AccessType::*;
    let dir = tempfile::tempdir().unwrap();
    let everyone = vec![Principal::Any];
    let storage = StorageSystem::builder()
        .path(dir.path())
        .with_access_policies(vec![
            policy(
                "list-all",
                Effect::Allow,
                everyone.clone(),
                vec![],
                "*",
                vec![List, Read],
            ),
            policy(
                "no-hr-list",
                Effect::Deny,
                everyone,
                vec![],
                "hr/*",
                vec![List],
            ),
        ])
        .build()
        .unwrap();
    let admin = storage.get_provider(StorageType::Metadata).unwrap();
    for k in ["hr/salaries", "hr/reviews", "eng/plan"] {
        admin.store(&key(k), b"v", &StorageOptions::new()).unwrap();
    }
    let p = storage
        .as_identity(&Identity::new("eve"))
        .get_provider(StorageType::Metadata)
        .unwrap();
    assert_eq!(
        p.list_keys(&KeyPattern::all()).unwrap(),
        vec![key("eng/plan")]
    );
    assert_eq!(
        p.list_keys(&KeyPattern::prefix("hr")).unwrap(),
        Vec::<StorageKey>::new()
    );
    assert!(p.list_keys(&KeyPattern::prefix("hr/")).is_err());
    assert!(p
        .list_keys(&KeyPattern::all().with_limit(0))
        .unwrap()
        .is_empty());
}

/// The streaming blob API through an identity is checked like every
/// provider: Write to put, Read to open, Delete to delete, List to list.
#[test]
fn blob_streams_are_access_controlled() {
    use AccessType::*;
    let dir = tempfile::tempdir().unwrap();
    let storage = StorageSystem::builder()
        .path(dir.path())
        .with_access_policies(vec![
            policy(
                "writer",
                Effect::Allow,
                vec![Principal::Identity("w".into())],
                vec![StorageType::Blob],
                "*",
                vec![Read, Write, Delete, List],
            ),
            policy(
                "reader",
                Effect::Allow,
                vec![Principal::Identity("r".into())],
                vec![StorageType::Blob],
                "open/*",
                vec![Read, List],
            ),
        ])
        .build()
        .unwrap();
    let writer = storage
        .as_identity(&Identity::new("w"))
        .get_blob_storage()
        .unwrap();
    let reader = storage
        .as_identity(&Identity::new("r"))
        .get_blob_storage()
        .unwrap();
    let nobody = storage
        .as_identity(&Identity::new("x"))
        .get_blob_storage()
        .unwrap();
    let o = StorageOptions::new();
    writer.put_stream(&key("open/a"), &b"aaa"[..], &o).unwrap();
    writer
        .put_stream(&key("closed/b"), &b"bbb"[..], &o)
        .unwrap();
    let denied = |r: strata::Result<_>| matches!(r, Err(StorageError::AccessDenied { .. }));
    assert!(denied(
        reader.put_stream(&key("open/c"), &b"c"[..], &o).map(|_| ())
    ));
    assert!(denied(
        nobody.put_stream(&key("x"), &b"c"[..], &o).map(|_| ())
    ));
    assert!(reader.open(&key("open/a")).is_ok());
    assert!(denied(reader.open(&key("closed/b")).map(|_| ())));
    assert!(denied(reader.metadata(&key("closed/b")).map(|_| ())));
    assert!(denied(nobody.open(&key("open/a")).map(|_| ())));
    assert!(denied(reader.delete_blob(&key("open/a")).map(|_| ())));
    assert!(denied(nobody.cleanup().map(|_| ())));
    use strata::StorageProvider;
    assert_eq!(
        reader.list_keys(&KeyPattern::prefix("open/")).unwrap(),
        vec![key("open/a")]
    );
    assert!(denied(nobody.list_keys(&KeyPattern::all()).map(|_| ())));
    assert!(writer.delete_blob(&key("open/a")).unwrap());
    // Nothing a denied call touched changed.
    assert!(writer.open(&key("closed/b")).is_ok());
    assert!(matches!(
        writer.open(&key("open/c")),
        Err(StorageError::NotFound(_))
    ));
}
