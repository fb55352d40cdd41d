//! The device simulator: homes, devices and stewards speaking the eldercare
//! protocol. This first part is one device that speaks PROTOCOL.md over
//! MQTT; the scenarios, the steward players and load mode build on it.

pub mod device;
