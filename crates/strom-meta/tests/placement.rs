//! Automatic replica placement: distinct replicas, spread over racks, leaders balanced.

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use strom_meta::*;
use uuid::Uuid;

/// An image whose brokers `1..=racks.len()` are unfenced, broker `i + 1` in `racks[i]`.
fn brokers_in_racks(racks: &[Option<u8>]) -> MetadataImage {
    let records: Vec<_> = racks
        .iter()
        .enumerate()
        .map(|(i, rack)| MetadataRecord::RegisterBroker {
            broker_id: i as i32 + 1,
            incarnation_id: Uuid::from_u128(i as u128 + 1),
            epoch: i as i64 + 1,
            endpoints: vec![],
            rack: rack.map(|r| format!("rack-{r}")),
            fenced: false,
        })
        .collect();
    MetadataImage::default().apply(&records).unwrap().0
}

fn create(image: &MetadataImage, seed: u64, partitions: i32, rf: i16) -> TopicImage {
    let mut c = Controller::new(ControllerConfig {
        topic_id_seed: seed,
        ..ControllerConfig::default()
    });
    let request = ControllerRequest::CreateTopics(CreateTopicsRequest {
        topics: vec![CreatableTopic {
            num_partitions: partitions,
            replication_factor: rf,
            ..CreatableTopic::named("t")
        }],
        validate_only: false,
    });
    let (records, reply) = c.handle(image, request, 0).unwrap();
    let ControllerReply::CreateTopics(results) = reply else {
        panic!()
    };
    assert_eq!(results[0].error, None);
    image
        .apply(&records)
        .unwrap()
        .0
        .topic_by_name("t")
        .unwrap()
        .clone()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn replicas_spread_over_racks_and_leaders_balance(
        racks in prop::collection::vec(prop::option::of(0..3u8), 1..8),
        seed in any::<u64>(),
        partitions in 1..24i32,
        rf_pick in any::<usize>(),
    ) {
        let image = brokers_in_racks(&racks);
        let rf = 1 + rf_pick % racks.len();
        let topic = create(&image, seed, partitions, rf as i16);
        let rack_of = |b: i32| racks[(b - 1) as usize];
        let rack_count = racks.iter().collect::<BTreeSet<_>>().len();
        let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
        for p in topic.partitions.values() {
            let distinct: BTreeSet<_> = p.replicas.iter().collect();
            prop_assert_eq!(distinct.len(), rf);
            let spread: BTreeSet<_> = p.replicas.iter().map(|b| rack_of(*b)).collect();
            prop_assert_eq!(spread.len(), rf.min(rack_count), "replicas {:?}", p.replicas);
            *leaders.entry(p.leader).or_default() += 1;
        }
        let most = leaders.values().max().copied().unwrap_or(0);
        let least = if leaders.len() < racks.len() { 0 } else { leaders.values().min().copied().unwrap_or(0) };
        prop_assert!(most - least <= 1, "leaders {:?}", leaders);
    }
}

#[test]
fn placement_is_deterministic_per_topic_id() {
    let image = brokers_in_racks(&[Some(0), Some(1), Some(0), Some(1)]);
    assert_eq!(create(&image, 3, 8, 2), create(&image, 3, 8, 2));
}
