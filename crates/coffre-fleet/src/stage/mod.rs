//! The stages of a fleet run, in order. Each is a function from what it
//! needs to what it produces; [`run`](crate::run) chains them, and a test
//! or a tool can run them one by one.
//!
//! | stage | function | needs | produces |
//! |---|---|---|---|
//! | provision | [`provision()`] | [`ProvisionPlan`] | [`Provisioned`]: PKI, one chip and identity per [`Device`], the manifest |
//! | provision, factory identities | [`provision_factory()`] | [`ProvisionPlan`] | [`Provisioned`] with [`Onboarding`]: parts and their signed manifest, imported (no certificate issued) |
//! | broker | [`broker()`] | [`BrokerPlan`] | a running [`Broker`] |
//! | broker (cluster) | [`cluster()`] | [`ClusterBrokerPlan`] | a running [`Broker`]: RabbitMQ nodes |
//! | collect (start) | [`listen`] | the broker, the subscriber's [`Device`] | a [`Listener`] |
//! | ramp | [`ramp()`] | the broker, the devices, a [`RampPlan`] | [`Ramped`]: [`Connected`] devices and [`RampFigures`] |
//! | publish | [`publish()`] | the [`Connected`] devices, a [`Fault`] for a cluster | [`Published`], what was [`Killed`] |
//! | collect | [`collect()`] | the [`Listener`], [`Published`] | [`Collected`] |
//! | report | [`report()`] | [`ReportInputs`] | a [`FleetReport`] |

pub mod broker;
pub mod cluster;
pub mod collect;
pub mod factory;
pub mod failover;
pub mod provision;
pub mod publish;
pub mod ramp;
pub mod report;

pub use broker::{broker, Broker, BrokerPlan};
pub use cluster::{cluster, ClusterBrokerPlan};
pub use collect::{collect, listen, Collected, Listener};
pub use factory::{provision_factory, Onboarding};
pub use failover::{FailoverFigures, Fault, FaultAction, FaultSchedule, Killed};
pub use provision::{provision, Device, ProvisionPlan, Provisioned};
pub use publish::{publish, Published};
pub use ramp::{ramp, Connected, RampFigures, RampPlan, Ramped};
pub use report::{report, CpuFigures, FleetReport, MemoryFigures, ReportInputs};
