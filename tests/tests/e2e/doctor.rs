//! #14, item 6: `caguard doctor` against the simulated estate. Bellows College's
//! app lacks its Policy permissions; Fabrikam Dental's GDAP relationship grants
//! Conditional Access Administrator, but its only access assignment gives the role
//! to a group the service account is not in. One line for each, with the fix.

use caguard_sim::sample_estate;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_prints_one_line_per_gap_with_its_fix_and_exits_1() {
    let mut estate = sample_estate();
    let fabrikam = estate.tenants.iter().find(|t| t.display_name == "Fabrikam Dental").unwrap().id.clone();
    let rel = estate.relationships.iter_mut().find(|r| r["customer"]["tenantId"] == fabrikam.as_str()).unwrap();
    rel["accessAssignments"][0]["accessContainer"]["accessContainerId"] = json!("0a0a0a0a-0000-4000-8000-000000000001");
    let sim = caguard_sim::start(estate.clone(), Default::default()).await.unwrap();
    let config = std::env::temp_dir().join(format!("caguard-doctor-{}.toml", std::process::id()));
    std::fs::write(&config, caguard::demo::sample_config_toml(&estate)).unwrap();
    let run = || caguard_e2e::caguard_on_sim(&sim, &estate, &["doctor", "--config", config.to_str().unwrap()]);
    let out = run();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let lines = |who: &str| text.lines().filter(|l| l.starts_with("GAP ") && l.contains(who)).collect::<Vec<_>>();
    let bellows = lines("Bellows College");
    assert_eq!(bellows.len(), 1, "{text}");
    assert!(bellows[0].contains("403") && bellows[0].contains("Fix: grant the app Policy.Read.All"), "{}", bellows[0]);
    let fab = lines("Fabrikam Dental");
    assert_eq!(fab.len(), 1, "{text}");
    assert!(
        fab[0].contains("no active access assignment") && fab[0].contains("M365 GDAP Conditional Access Administrator")
    );
    // The unconsented tenant is a gap too; the healthy ones are not.
    assert_eq!(lines("Wingtip Toys").len(), 1, "{text}");
    assert!(lines("Northwind Traders").is_empty() && lines("MSP tenant").is_empty(), "{text}");
    assert!(sim.journal().iter().all(|e| e.method == "GET" || e.kind == "token"), "doctor writes nothing");
}

/// Mail.Send cannot be read back, only tried: `--test-email` sends one message,
/// and a 403 is one gap naming the permission.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_with_test_email_names_a_missing_mail_send() {
    let mut estate = sample_estate();
    let msp_id = estate.msp_tenant_id.clone();
    let msp = estate.tenants.iter_mut().find(|t| t.id == msp_id).unwrap();
    msp.mail_send_denied = true;
    let mailbox = msp.users.iter().find(|u| u["displayName"] == "Dana Office").unwrap()["userPrincipalName"]
        .as_str()
        .unwrap()
        .to_string();
    let sim = caguard_sim::start(estate.clone(), Default::default()).await.unwrap();
    let toml = caguard::demo::sample_config_toml(&estate)
        + &format!("\n[alerts]\nemail_from = \"{mailbox}\"\nemail_to = [\"noc@contosomsp.example\"]\n");
    let config = std::env::temp_dir().join(format!("caguard-doctor-mail-{}.toml", std::process::id()));
    std::fs::write(&config, toml).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["doctor", "--config", config.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = caguard_e2e::caguard_on_sim(&sim, &estate, &args);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let plain = run(&[]);
    assert!(plain.contains("Mail.Send is only checked by sending"), "{plain}");
    assert!(!plain.contains("Mail.Send)"), "not a gap without the test: {plain}");
    let tested = run(&["--test-email"]);
    let gaps: Vec<&str> = tested.lines().filter(|l| l.contains("email alerts (Mail.Send)")).collect();
    assert_eq!(gaps.len(), 1, "{tested}");
    assert!(gaps[0].contains("403") && gaps[0].contains("application permission"), "{}", gaps[0]);
}
