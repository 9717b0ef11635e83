//! The Queue Storage client against Azurite.

use caguard_e2e::{Azurite, unique_table};

#[tokio::test]
async fn puts_and_receives_base64_messages() {
    let az = Azurite::start_queue();
    let q = az.queue_client();
    let name = unique_table("q").to_ascii_lowercase();
    q.create_queue(&name).await.unwrap();
    q.put(&name, r#"{"tenantId":"t1","reason":"drift"}"#).await.unwrap();
    q.put(&name, "second").await.unwrap();
    let got = q.receive(&name).await.unwrap();
    assert_eq!(got, vec![r#"{"tenantId":"t1","reason":"drift"}"#.to_string(), "second".to_string()]);
}
