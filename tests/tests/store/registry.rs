//! The registry: elders, devices, stewards, users and sessions.

use chrono::Duration;

use dispatcher::domain::{DeviceKind, IncidentKind, LatLon, Priority, Risks, Role, StewardStatus};
use dispatcher::store::{ConflictCode, StoreError};

use eldercare_tests::store_harness::Harness;

use crate::fixtures::*;

pub(crate) async fn elders_crud(h: Harness) {
    let s = &*h.store;
    let mut e = elder("e-1");
    e.risks = Risks {
        fall: true,
        wandering: false,
    };
    e.limits.heart_rate_min = Some(40.0);
    e.limits
        .priorities
        .insert(IncidentKind::Call, Priority::Critical);
    s.insert_elder(&e).await.unwrap();
    assert_eq!(s.elder(&e.id).await.unwrap(), Some(e.clone()));

    match s.insert_elder(&e).await {
        Err(StoreError::Conflict {
            code: ConflictCode::Taken,
            message: m,
        }) => assert_eq!(m, "elder e-1 already exists"),
        other => panic!("expected a conflict, got {other:?}"),
    }

    e.name = "Tashi".into();
    e.contacts.clear();
    s.update_elder(&e).await.unwrap();
    assert_eq!(s.elder(&e.id).await.unwrap(), Some(e.clone()));

    s.insert_elder(&elder("e-2")).await.unwrap();
    let all: Vec<_> = s
        .elders()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(all, vec![elder_id("e-1"), elder_id("e-2")]);

    match s.update_elder(&elder("e-9")).await {
        Err(StoreError::NotFound(m)) => assert_eq!(m, "elder e-9"),
        other => panic!("expected not found, got {other:?}"),
    }
    assert!(matches!(
        s.delete_elder(&elder_id("e-9")).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.elder(&elder_id("e-9")).await.unwrap(), None);

    // Deleting an elder unbinds their devices; the devices stay.
    s.insert_device(&device("btn-1", Some("e-1"), DeviceKind::CallButton))
        .await
        .unwrap();
    s.delete_elder(&e.id).await.unwrap();
    assert_eq!(s.elder(&e.id).await.unwrap(), None);
    let d = s.device(&device_id("btn-1")).await.unwrap().unwrap();
    assert_eq!(d.elder_id, None);
}

pub(crate) async fn devices_crud(h: Harness) {
    let s = &*h.store;
    s.insert_elder(&elder("e-1")).await.unwrap();
    let mut d = device("btn-1", Some("e-1"), DeviceKind::CallButton);
    s.insert_device(&d).await.unwrap();
    assert_eq!(s.device(&d.id).await.unwrap(), Some(d.clone()));

    match s.insert_device(&d).await {
        Err(StoreError::Conflict {
            code: ConflictCode::Taken,
            message: m,
        }) => assert_eq!(m, "device btn-1 already exists"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    match s
        .insert_device(&device("btn-2", Some("e-9"), DeviceKind::Pendant))
        .await
    {
        Err(StoreError::Invalid(m)) => assert_eq!(m, "elder e-9 does not exist"),
        other => panic!("expected invalid, got {other:?}"),
    }
    assert_eq!(s.device(&device_id("btn-2")).await.unwrap(), None);

    // An update replaces the registry fields only.
    d.kind = DeviceKind::Pendant;
    d.heartbeat_s = 30;
    d.elder_id = None;
    d.online = true; // ignored: health is the heartbeats' to write
    s.update_device(&d).await.unwrap();
    let got = s.device(&d.id).await.unwrap().unwrap();
    assert_eq!(
        (got.kind, got.heartbeat_s, got.elder_id, got.online),
        (DeviceKind::Pendant, 30, None, false)
    );
    d.elder_id = Some(elder_id("e-9"));
    assert!(matches!(
        s.update_device(&d).await,
        Err(StoreError::Invalid(_))
    ));
    match s
        .update_device(&device("nope", None, DeviceKind::Other))
        .await
    {
        Err(StoreError::NotFound(m)) => assert_eq!(m, "device nope"),
        other => panic!("expected not found, got {other:?}"),
    }

    s.insert_device(&device("bed-1", Some("e-1"), DeviceKind::BedSensor))
        .await
        .unwrap();
    let ids: Vec<_> = s
        .devices()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, vec![device_id("bed-1"), device_id("btn-1")]);
    s.delete_device(&d.id).await.unwrap();
    assert!(matches!(
        s.delete_device(&d.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.devices().await.unwrap().len(), 1);
}

pub(crate) async fn stewards_crud(h: Harness) {
    let s = &*h.store;
    let mut st = steward("s-1");
    s.insert_steward(&st).await.unwrap();
    assert_eq!(s.steward(&st.id).await.unwrap(), Some(st.clone()));
    assert!(matches!(
        s.insert_steward(&st).await,
        Err(StoreError::Conflict { code: ConflictCode::Taken, message: m }) if m == "steward s-1 already exists"
    ));

    st.name = "Pema".into();
    st.skills = vec!["nurse".into(), "driver".into()];
    s.update_steward(&st).await.unwrap();
    assert_eq!(s.steward(&st.id).await.unwrap(), Some(st.clone()));
    assert!(matches!(
        s.update_steward(&steward("s-9")).await,
        Err(StoreError::NotFound(m)) if m == "steward s-9"
    ));

    // Duty moves only the idle states.
    let on = s
        .set_steward_duty(&st.id, true, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((on.on_duty, on.status), (true, StewardStatus::Available));
    let off = s
        .set_steward_duty(&st.id, false, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((off.on_duty, off.status), (false, StewardStatus::OffDuty));
    let mut busy = steward("s-2");
    busy.on_duty = true;
    busy.status = StewardStatus::Busy;
    s.insert_steward(&busy).await.unwrap();
    let still = s
        .set_steward_duty(&busy.id, false, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((still.on_duty, still.status), (false, StewardStatus::Busy));
    let mut offered = steward("s-3");
    offered.status = StewardStatus::Offered;
    s.insert_steward(&offered).await.unwrap();
    let still = s
        .set_steward_duty(&offered.id, true, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        (still.on_duty, still.status),
        (true, StewardStatus::Offered)
    );
    assert!(matches!(
        s.set_steward_duty(&steward_id("s-9"), true, chrono::Utc::now())
            .await,
        Err(StoreError::NotFound(_))
    ));

    let at = LatLon::new(29.65, 91.13).unwrap();
    let moved = s
        .set_steward_location(&st.id, at, Some(12.5), day())
        .await
        .unwrap();
    assert_eq!(moved.location(), Some(at));
    assert_eq!(moved.location_at, Some(day()));
    assert_eq!(moved.accuracy_m, Some(12.5));
    assert!(matches!(
        s.set_steward_location(&steward_id("s-9"), at, None, day())
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.stewards().await.unwrap().len(), 3);
}

pub(crate) async fn users_and_sessions(h: Harness) {
    let s = &*h.store;
    s.insert_steward(&steward("s-1")).await.unwrap();
    let admin = user("admin", Role::Admin, None);
    let pema = user("pema", Role::Steward, Some("s-1"));
    s.insert_user(&admin).await.unwrap();
    s.insert_user(&pema).await.unwrap();
    assert_eq!(s.user("pema").await.unwrap(), Some(pema.clone()));
    assert_eq!(s.users().await.unwrap(), vec![admin.clone(), pema.clone()]);
    assert!(matches!(
        s.insert_user(&admin).await,
        Err(StoreError::Conflict { code: ConflictCode::Taken, message: m }) if m == "user admin already exists"
    ));
    assert!(matches!(
        s.insert_user(&user("ghost", Role::Steward, Some("s-9"))).await,
        Err(StoreError::Invalid(m)) if m == "steward s-9 does not exist"
    ));
    // A steward login must name its steward.
    assert!(matches!(
        s.insert_user(&user("nobody", Role::Steward, None)).await,
        Err(StoreError::Invalid(_))
    ));

    let now = day();
    s.insert_session("hash-1", "pema", now + Duration::hours(1))
        .await
        .unwrap();
    s.insert_session("hash-2", "admin", now + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(s.session_user("hash-1", now).await.unwrap(), Some(pema));
    assert_eq!(s.session_user("hash-x", now).await.unwrap(), None);
    // A session ends at its expiry, not a moment later.
    assert_eq!(
        s.session_user("hash-1", now + Duration::hours(1))
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        s.insert_session("hash-3", "ghost", now).await,
        Err(StoreError::Invalid(m)) if m == "user ghost does not exist"
    ));

    s.delete_user("admin").await.unwrap();
    assert_eq!(s.session_user("hash-2", now).await.unwrap(), None);
    assert!(matches!(
        s.delete_user("admin").await,
        Err(StoreError::NotFound(m)) if m == "user admin"
    ));
}

/// Areas (where each grid belongs) and a supervisor's scope, stored and
/// read back as set; a scoped filter of no grids matches nothing.
pub(crate) async fn areas_and_scopes(h: Harness) {
    use dispatcher::domain::{Area, Scope};
    use dispatcher::store::IncidentFilter;
    use dispatcher::store::logins::UserChange;
    let s = h.store.as_ref();
    let area = |grid: &str, community: &str| Area {
        grid: grid.into(),
        community: community.into(),
        district: "d1".into(),
    };
    assert_eq!(s.areas().await.unwrap(), vec![]);
    assert_eq!(s.put_areas(&[]).await.unwrap(), 0);
    s.put_areas(&[area("g-2", "east"), area("g-1", "west")])
        .await
        .unwrap();
    // An upsert moves a grid.
    s.put_areas(&[area("g-1", "east")]).await.unwrap();
    assert_eq!(
        s.areas().await.unwrap(),
        vec![area("g-1", "east"), area("g-2", "east")]
    );
    s.remove_area("g-2").await.unwrap();
    assert!(matches!(
        s.remove_area("g-2").await,
        Err(StoreError::NotFound(_))
    ));

    let mut sup = user("sup", Role::Supervisor, None);
    sup.scope = Scope::Community("east".into());
    s.insert_user(&sup).await.unwrap();
    assert_eq!(s.user("sup").await.unwrap(), Some(sup.clone()));
    let changed = s
        .change_user(
            "sup",
            &UserChange {
                scope: Some(Scope::District("d1".into())),
                ..UserChange::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.scope, Scope::District("d1".into()));
    let changed = s
        .change_user(
            "sup",
            &UserChange {
                scope: Some(Scope::Site),
                ..UserChange::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.scope, Scope::Site);

    s.insert_elder(&elder("e-1")).await.unwrap();
    let none = s
        .incidents(&IncidentFilter {
            grids: Some(vec![]),
            ..IncidentFilter::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
}
