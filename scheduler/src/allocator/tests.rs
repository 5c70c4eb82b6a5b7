//! The allocator's Mesos semantics, case by case.

use super::*;
use crate::{pools::UNRESERVED, resources::Ranges};

fn agent_resources(cpus: f64, mem: f64) -> Allotment {
    let mut r = Resources::from_scalars([("cpus", cpus), ("mem", mem)]);
    r.add_ranges("ports", &Ranges::new([(31000, 31099)]));
    Allotment::unreserved(r)
}

fn allocator() -> Allocator {
    Allocator::new(AllocatorConfig {
        offer_timeout_ms: Some(1000),
        ..AllocatorConfig::default()
    })
}

#[test]
fn each_agent_goes_to_the_fairest_framework() {
    let mut alloc = allocator();
    alloc.add_agent("a1", agent_resources(4.0, 4096.0));
    alloc.add_agent("a2", agent_resources(4.0, 4096.0));
    alloc.add_framework("f1", "*", true);
    alloc.add_framework("f2", "*", true);
    let offers = alloc.allocate(0);
    assert_eq!(offers.len(), 2);
    assert_eq!(offers[0].framework, "f1");
    assert_eq!(offers[1].framework, "f2", "f1 now holds a larger share");
    assert!(alloc.allocate(0).is_empty(), "nothing left to offer");
    assert!((alloc.framework_share("f1") - 0.5).abs() < 1e-9);
}

#[test]
fn a_decline_filters_the_agent_until_expiry_or_revive() {
    let mut alloc = allocator();
    alloc.add_agent("a1", agent_resources(4.0, 4096.0));
    alloc.add_framework("f1", "*", true);
    let offer = alloc.allocate(0).remove(0);
    alloc
        .decline("f1", &[offer.id], 5000, 10)
        .expect("declined");
    assert!(alloc.allocate(100).is_empty(), "filtered for 5 s");
    assert_eq!(alloc.allocate(5011).len(), 1, "the filter expired");
    let offer = alloc.offers().next().cloned().expect("outstanding");
    alloc
        .decline("f1", &[offer.id], 60_000, 6000)
        .expect("declined");
    assert!(alloc.allocate(6001).is_empty());
    alloc.revive("f1");
    assert_eq!(alloc.allocate(6002).len(), 1, "revive clears filters");
}

#[test]
fn a_filter_does_not_hide_resources_that_were_not_declined() {
    let mut alloc = allocator();
    alloc.add_agent("a1", agent_resources(4.0, 4096.0));
    alloc.add_framework("f1", "*", true);
    let offer = alloc.allocate(0).remove(0);
    let (agent, offered) = alloc.take_offers("f1", &[offer.id]).expect("taken");
    let task = Allotment::unreserved(Resources::from_scalars([("cpus", 1.0), ("mem", 128.0)]));
    alloc.settle("f1", &agent, &offered, &task, 60_000, 0);
    assert!(alloc.allocate(1).is_empty(), "the rest is filtered");
    alloc.recover("f1", "a1", &task);
    let again = alloc.allocate(2);
    assert_eq!(
        again.len(),
        1,
        "the task's resources came back, so the agent has more"
    );
    assert_eq!(again[0].resources, agent_resources(4.0, 4096.0));
}

#[test]
fn suppressed_and_inactive_frameworks_get_nothing() {
    let mut alloc = allocator();
    alloc.add_agent("a1", agent_resources(4.0, 4096.0));
    alloc.add_framework("f1", "*", true);
    alloc.suppress("f1");
    assert!(alloc.allocate(0).is_empty());
    alloc.revive("f1");
    let offers = alloc.allocate(0);
    assert_eq!(offers.len(), 1);
    let rescinded = alloc.set_framework_active("f1", false);
    assert_eq!(
        rescinded, offers,
        "a disconnected framework's offers are rescinded"
    );
    assert!(alloc.allocate(0).is_empty());
    assert_eq!(alloc.available("a1"), Some(&agent_resources(4.0, 4096.0)));
}

#[test]
fn offers_time_out_and_agents_leaving_rescind_theirs() {
    let mut alloc = allocator();
    alloc.add_agent("a1", agent_resources(4.0, 4096.0));
    alloc.add_agent("a2", agent_resources(4.0, 4096.0));
    alloc.add_framework("f1", "*", true);
    let offers = alloc.allocate(0);
    assert_eq!(alloc.expire(999), vec![]);
    let rescinded = alloc.remove_agent("a2");
    assert_eq!(rescinded.len(), 1);
    assert_eq!(rescinded[0].agent, "a2");
    let expired = alloc.expire(1000);
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].id, offers[0].id);
    assert_eq!(
        alloc.take_offers("f1", &[offers[0].id]),
        Err(OfferError::Unknown(offers[0].id))
    );
    assert_eq!(
        alloc.allocate(1001).len(),
        1,
        "timed-out resources are offered again"
    );
}

#[test]
fn bad_accepts_are_refused_and_give_the_offers_back() {
    let mut alloc = allocator();
    alloc.add_agent("a1", agent_resources(4.0, 4096.0));
    alloc.add_agent("a2", agent_resources(4.0, 4096.0));
    alloc.add_framework("f1", "*", true);
    alloc.add_framework("f2", "*", true);
    let offers = alloc.allocate(0);
    let (mine, theirs) = (offers[0].id, offers[1].id);
    assert_eq!(
        alloc.take_offers("f1", &[mine, theirs]),
        Err(OfferError::NotYours { offer: theirs })
    );
    assert!(alloc.offer(mine).is_none(), "the valid offer was recovered");
    assert_eq!(alloc.take_offers("f1", &[]), Err(OfferError::Empty));
    assert_eq!(
        alloc.take_offers("nobody", &[theirs]),
        Err(OfferError::UnknownFramework("nobody".into()))
    );
    assert!(
        alloc.offer(theirs).is_some(),
        "other frameworks' offers are untouched"
    );
}

#[test]
fn reservations_go_to_their_role_only() {
    let mut alloc = allocator();
    let mut total = agent_resources(4.0, 4096.0);
    total.add(
        "db",
        &Resources::from_scalars([("cpus", 2.0), ("mem", 1024.0)]),
    );
    alloc.add_agent("a1", total);
    alloc.add_framework("web", "web", true);
    alloc.add_framework("db", "db", true);
    let offers = alloc.allocate(0);
    assert_eq!(offers.len(), 2);
    let db = offers
        .iter()
        .find(|o| o.framework == "db")
        .expect("db offered");
    let web = offers
        .iter()
        .find(|o| o.framework == "web")
        .expect("web offered");
    assert!(
        web.resources.pool("db").is_none(),
        "web never sees db's reservation"
    );
    assert_eq!(db.resources.pool("db").map(|r| r.get("cpus")), Some(2.0));
    assert!(
        db.resources.pool(UNRESERVED).is_some() != web.resources.pool(UNRESERVED).is_some(),
        "the unreserved pool goes to exactly one of them"
    );
}

#[test]
fn role_weights_favour_heavier_roles() {
    let mut alloc = allocator();
    for i in 0..6 {
        alloc.add_agent(&format!("a{i}"), agent_resources(1.0, 1024.0));
    }
    alloc.set_role_weight("gold", 2.0);
    alloc.add_framework("g", "gold", true);
    alloc.add_framework("s", "silver", true);
    let offers = alloc.allocate(0);
    let gold = offers.iter().filter(|o| o.framework == "g").count();
    assert_eq!((gold, offers.len() - gold), (4, 2));
    let roles = alloc.roles();
    assert_eq!(
        roles.iter().find(|r| r.name == "gold").map(|r| r.weight),
        Some(2.0)
    );
}

#[test]
fn restored_tasks_count_toward_shares_and_capacity() {
    let mut alloc = allocator();
    alloc.add_agent("a1", agent_resources(4.0, 4096.0));
    let task = Allotment::unreserved(Resources::from_scalars([("cpus", 3.0), ("mem", 100.0)]));
    alloc.restore("old", "*", "a1", &task);
    assert!((alloc.framework_share("old") - 0.75).abs() < 1e-9);
    alloc.add_framework("new", "*", true);
    let offer = alloc.allocate(0).remove(0);
    assert_eq!(
        offer.framework, "new",
        "the restored framework is not connected"
    );
    assert_eq!(offer.resources.merged().get("cpus"), 1.0);
}
