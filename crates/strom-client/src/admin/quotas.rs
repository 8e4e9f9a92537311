//! Client quotas: AlterClientQuotas and DescribeClientQuotas (what `kafka-configs.sh
//! --entity-type users/clients` calls).

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};
use kafka_protocol::protocol::StrBytes;

use super::Admin;
use crate::cluster::Target;
use crate::error::{ClientError, Result};

/// A quota entity: (entity type, name) pairs, `None` naming the type's default entity
/// (`user`, `client-id` or `ip`).
pub type QuotaEntity = Vec<(String, Option<String>)>;

/// How a describe filter matches one entity type (Kafka's `ClientQuotaFilterComponent`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuotaMatch {
    /// That name exactly.
    Exact(String),
    /// The type's default entity.
    Default,
    /// Any entity of the type (named or default).
    Any,
}

impl Admin {
    /// Sets (`Some`) or removes (`None`) quota keys of one entity.
    pub async fn alter_client_quotas(
        &self,
        entity: &QuotaEntity,
        ops: &[(String, Option<f64>)],
    ) -> Result<()> {
        let entry = EntryData::default()
            .with_entity(
                entity
                    .iter()
                    .map(|(kind, name)| {
                        EntityData::default()
                            .with_entity_type(StrBytes::from_string(kind.clone()))
                            .with_entity_name(name.clone().map(StrBytes::from_string))
                    })
                    .collect(),
            )
            .with_ops(
                ops.iter()
                    .map(|(key, value)| {
                        OpData::default()
                            .with_key(StrBytes::from_string(key.clone()))
                            .with_value(value.unwrap_or(0.0))
                            .with_remove(value.is_none())
                    })
                    .collect(),
            );
        let cluster = &self.cluster;
        let r = cluster
            .retry("alter client quotas", || async {
                cluster
                    .call(&Target::Any, |_| {
                        Ok(AlterClientQuotasRequest::default().with_entries(vec![entry.clone()]))
                    })
                    .await
            })
            .await?;
        for e in r.entries {
            ClientError::check(
                e.error_code,
                e.error_message.map(|m| m.to_string()),
                "alter client quotas",
            )?;
        }
        Ok(())
    }

    /// The quotas of the entities matching every component (`strict`: entities with no
    /// other types than those named), as (entity, [(key, value)]).
    pub async fn describe_client_quotas(
        &self,
        components: &[(String, QuotaMatch)],
        strict: bool,
    ) -> Result<Vec<(QuotaEntity, Vec<(String, f64)>)>> {
        let components: Vec<ComponentData> = components
            .iter()
            .map(|(kind, matched)| {
                let base =
                    ComponentData::default().with_entity_type(StrBytes::from_string(kind.clone()));
                match matched {
                    QuotaMatch::Exact(name) => base
                        .with_match_type(0)
                        .with_match(Some(StrBytes::from_string(name.clone()))),
                    QuotaMatch::Default => base.with_match_type(1),
                    QuotaMatch::Any => base.with_match_type(2),
                }
            })
            .collect();
        let cluster = &self.cluster;
        let r = cluster
            .retry("describe client quotas", || async {
                cluster
                    .call(&Target::Any, |_| {
                        Ok(DescribeClientQuotasRequest::default()
                            .with_components(components.clone())
                            .with_strict(strict))
                    })
                    .await
            })
            .await?;
        ClientError::check(
            r.error_code,
            r.error_message.map(|m| m.to_string()),
            "describe client quotas",
        )?;
        let mut out: Vec<(QuotaEntity, Vec<(String, f64)>)> = r
            .entries
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                let mut entity: QuotaEntity = e
                    .entity
                    .into_iter()
                    .map(|d| {
                        (
                            d.entity_type.to_string(),
                            d.entity_name.map(|n| n.to_string()),
                        )
                    })
                    .collect();
                entity.sort();
                let mut values: Vec<(String, f64)> = e
                    .values
                    .into_iter()
                    .map(|v| (v.key.to_string(), v.value))
                    .collect();
                values.sort_by(|a, b| a.0.cmp(&b.0));
                (entity, values)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}
