//! The Functions app in-process for end-to-end tests: served over HTTP on the
//! simulator and a store, invoked as the Functions host would, with a webhook
//! receiver that keeps every alert it is sent.

use caguard::alert::Alerter;
use caguard::functions::protocol::InvocationResponse;
use caguard::functions::{Ready, Settings, router};
use caguard::store::Store;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

pub type Inbox = Arc<Mutex<Vec<Value>>>;

pub async fn webhook_receiver() -> (String, Inbox) {
    let inbox: Inbox = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook/secret-path",
            axum::routing::post(
                |axum::extract::State(i): axum::extract::State<Inbox>, axum::Json(v): axum::Json<Value>| async move {
                    i.lock().unwrap().push(v);
                    "ok"
                },
            ),
        )
        .with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook/secret-path", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, inbox)
}

pub async fn invoke(base: &str, function: &str, data: Value) -> InvocationResponse {
    let inv = json!({"Data": data, "Metadata": {"DequeueCount": 1, "sys": {"MethodName": function, "RandGuid": format!("{function}-run")}}});
    let resp = reqwest::Client::new().post(format!("{base}/{function}")).json(&inv).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{function}");
    resp.json().await.unwrap()
}

pub fn timer() -> Value {
    json!({"timer": {"ScheduleStatus": null, "IsPastDue": false}})
}

/// The Functions app on the simulator and `store`; returns its base URL.
pub async fn serve(
    sim: &caguard_sim::SimHandle,
    estate: &caguard_sim::Estate,
    store: &Arc<dyn Store>,
    alerter: Alerter,
    confirm_large_plans: bool,
) -> String {
    serve_with_client(caguard::demo::sample_client(sim, estate), estate, store, alerter, confirm_large_plans).await
}

/// The same, with its own Graph client (say, with short retries).
pub async fn serve_with_client(
    client: caguard::graph::GraphClient,
    estate: &caguard_sim::Estate,
    store: &Arc<dyn Store>,
    alerter: Alerter,
    confirm_large_plans: bool,
) -> String {
    serve_config(caguard::demo::sample_config(estate), client, store, alerter, confirm_large_plans).await
}

/// The same, with its own config.
pub async fn serve_config(
    config: caguard::config::Config,
    client: caguard::graph::GraphClient,
    store: &Arc<dyn Store>,
    alerter: Alerter,
    confirm_large_plans: bool,
) -> String {
    let ready = Ready {
        config,
        alerter,
        client,
        store: store.clone(),
        settings: Settings {
            confirm_large_plans,
            max_dequeue_count: 5,
            cipp_connection_string: None,
            public_url: None,
            reconcile_queue: caguard::functions::RECONCILE_QUEUE.into(),
        },
        queue: None,
        partner: Arc::new(caguard::partner::Verifier::from_env()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(Arc::new(Ok(ready)))).await });
    base
}
