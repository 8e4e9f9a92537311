//! ListConfigResources (v0 is KIP-714's ListClientMetricsResources: the names of the
//! client-metrics subscriptions; v1 lists the config resources of the types asked for, every
//! type served when none is named, as Kafka 4.1 does). Topics are listed from the image;
//! registered brokers by id; client-metrics subscriptions and groups that have keys set.

use strom_meta::ConfigResourceKind;
use strom_protocol::messages::list_config_resources_response::ConfigResource;
use strom_protocol::messages::{
    ListConfigResourcesRequest, ListConfigResourcesResponse, ResponseKind,
};
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::server::BrokerContext;

/// Kafka's resource type ids listed here.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const CLIENT_METRICS: i8 = 16;
const GROUP: i8 = 32;

pub(super) fn handle(
    context: &BrokerContext,
    request: ListConfigResourcesRequest,
    version: i16,
) -> ResponseKind {
    let types: Vec<i8> = if version == 0 {
        vec![CLIENT_METRICS]
    } else if request.resource_types.is_empty() {
        vec![TOPIC, BROKER, CLIENT_METRICS, GROUP]
    } else {
        request.resource_types.clone()
    };
    // Kafka refuses a type it does not list (broker loggers here) as a whole.
    if types
        .iter()
        .any(|t| ![TOPIC, BROKER, CLIENT_METRICS, GROUP].contains(t))
    {
        return ResponseKind::ListConfigResources(
            ListConfigResourcesResponse::default()
                .with_error_code(ErrorCode::UNSUPPORTED_VERSION.code()),
        );
    }
    let image = context.metadata.image();
    let mut resources = Vec::new();
    let resource = |name: &str, kind: i8| {
        ConfigResource::default()
            .with_resource_name(str_bytes(name))
            .with_resource_type(kind)
    };
    for kind in types {
        match kind {
            TOPIC => resources.extend(image.topics().map(|t| resource(&t.name, TOPIC))),
            BROKER => resources.extend(
                image
                    .brokers()
                    .map(|b| resource(&b.broker_id.to_string(), BROKER)),
            ),
            GROUP => resources.extend(
                image
                    .configs_of_kind(ConfigResourceKind::Group)
                    .map(|(name, _)| resource(name, GROUP)),
            ),
            _ => resources.extend(
                image
                    .configs_of_kind(ConfigResourceKind::ClientMetrics)
                    .map(|(name, _)| resource(name, CLIENT_METRICS)),
            ),
        }
    }
    ResponseKind::ListConfigResources(
        ListConfigResourcesResponse::default().with_config_resources(resources),
    )
}
