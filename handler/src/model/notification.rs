//! Change-notification `subscription`, notification collections and lifecycle events.

use super::{graph_enum, graph_object};

graph_enum! {
    /// `lifecycleEventType`.
    pub enum LifecycleEvent {
        SubscriptionRemoved => "subscriptionRemoved",
        Missed => "missed",
        ReauthorizationRequired => "reauthorizationRequired",
    }
}

graph_object! {
    /// `subscription`.
    pub struct Subscription {
        id: String,
        resource: String,
        change_type: String,
        client_state: String,
        notification_url: String,
        lifecycle_notification_url: String,
        expiration_date_time: String,
        application_id: String,
        creator_id: String,
        include_resource_data: bool,
        latest_supported_tls_version: String,
        encryption_certificate: String,
        encryption_certificate_id: String,
        notification_content_type: String,
    }
}

graph_object! {
    /// `changeNotificationCollection`: the body Graph POSTs to a webhook, for
    /// change notifications and lifecycle notifications alike.
    pub struct ChangeNotificationCollection {
        value: Vec<ChangeNotification>,
        validation_tokens: Vec<String>,
    }
}

graph_object! {
    /// `changeNotification` (with `lifecycleEvent` set for lifecycle notifications).
    pub struct ChangeNotification {
        id: String,
        subscription_id: String,
        subscription_expiration_date_time: String,
        client_state: String,
        change_type: String,
        resource: String,
        tenant_id: String,
        resource_data: serde_json::Value,
        encrypted_content: serde_json::Value,
        lifecycle_event: LifecycleEvent,
    }
}
