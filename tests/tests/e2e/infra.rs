//! The Bicep cannot be compiled here (no Bicep CLI is available from the package
//! registries this project can reach), so it is checked structurally, and
//! against the function definitions it has to serve.

use std::collections::BTreeSet;
use std::path::Path;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `resource sym 'Type@version'` declarations: (symbol, type, api version).
fn resources(bicep: &str) -> Vec<(String, String, String)> {
    bicep
        .lines()
        .filter_map(|l| {
            let l = l.trim_start().strip_prefix("resource ")?;
            let (sym, rest) = l.split_once(' ')?;
            let quoted = rest.split('\'').nth(1)?;
            let (ty, ver) = quoted.split_once('@')?;
            Some((sym.to_string(), ty.to_string(), ver.to_string()))
        })
        .collect()
}

fn params(bicep: &str) -> BTreeSet<String> {
    bicep
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("param ")?.split_whitespace().next().map(str::to_string))
        .collect()
}

fn balanced(text: &str, file: &str) {
    let mut stack = Vec::new();
    let mut in_str = false;
    let mut prev = ' ';
    for c in text.lines().filter(|l| !l.trim_start().starts_with("//")).flat_map(|l| l.chars().chain(['\n'])) {
        if c == '\'' && prev != '\\' {
            in_str = !in_str;
        }
        if !in_str {
            match c {
                '{' | '[' | '(' => stack.push(c),
                '}' | ']' | ')' => {
                    let open = stack.pop().unwrap_or_else(|| panic!("{file}: unmatched {c}"));
                    assert_eq!(
                        (open, c).0,
                        match c {
                            '}' => '{',
                            ']' => '[',
                            _ => '(',
                        },
                        "{file}: {open} closed by {c}"
                    );
                }
                _ => {}
            }
        }
        prev = c;
    }
    assert!(stack.is_empty() && !in_str, "{file}: unbalanced {stack:?}");
}

#[test]
fn the_bicep_declares_a_keyless_flex_consumption_custom_handler() {
    let main = read("infra/main.bicep");
    balanced(&main, "main.bicep");
    let res = resources(&main);
    let types: BTreeSet<&str> = res.iter().map(|(_, t, _)| t.as_str()).collect();
    for want in [
        "Microsoft.ManagedIdentity/userAssignedIdentities",
        "Microsoft.Storage/storageAccounts",
        "Microsoft.Storage/storageAccounts/queueServices/queues",
        "Microsoft.Storage/storageAccounts/tableServices/tables",
        "Microsoft.Storage/storageAccounts/blobServices/containers",
        "Microsoft.Authorization/roleAssignments",
        "Microsoft.OperationalInsights/workspaces",
        "Microsoft.Insights/components",
        "Microsoft.Web/serverfarms",
        "Microsoft.Web/sites",
    ] {
        assert!(types.contains(want), "main.bicep declares {want}: {types:?}");
    }
    for (sym, ty, ver) in &res {
        assert!(
            ver.len() >= 10 && ver.chars().take(4).all(|c| c.is_ascii_digit()),
            "{sym} ({ty}) has an API version: {ver}"
        );
    }
    for needle in [
        "name: 'FC1'",
        "tier: 'FlexConsumption'",
        "name: 'custom'",
        "type: 'UserAssignedIdentity'",
        "allowSharedKeyAccess: false",
    ] {
        assert!(main.contains(needle), "main.bicep: {needle}");
    }
    assert!(!main.contains("listKeys(") && !main.contains("AccountKey="), "no storage keys anywhere");
    // Storage Blob Data Owner, Queue Data Contributor, Table Data Contributor.
    for role in [
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    ] {
        assert!(main.contains(role), "role {role}");
    }
    for setting in [
        "AzureWebJobsStorage__accountName",
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__clientId",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "CAGUARD_CONFIG",
        "CAGUARD_KEYVAULT_URL",
        "CAGUARD_IDENTITY_CLIENT_ID",
    ] {
        assert!(main.contains(&format!("name: '{setting}'")), "app setting {setting}");
    }
}

#[test]
fn the_bicep_serves_every_function_definition() {
    let main = read("infra/main.bicep");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../function-definitions");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path().join("function.json");
        let def: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for b in def["bindings"].as_array().unwrap() {
            if let Some(q) = b["queueName"].as_str() {
                assert!(
                    main.contains(&format!("name: '{q}'")),
                    "{}: queue {q} is declared in main.bicep",
                    path.display()
                );
            }
            for v in b.as_object().unwrap().values().filter_map(|v| v.as_str()) {
                if let Some(setting) = v.strip_prefix('%').and_then(|s| s.strip_suffix('%')) {
                    assert!(
                        main.contains(&format!("name: '{setting}'")),
                        "{}: app setting {setting} is set in main.bicep",
                        path.display()
                    );
                }
            }
            if let Some(conn) = b["connection"].as_str() {
                assert!(
                    main.contains(&format!("name: '{conn}__accountName'")),
                    "{}: identity-based connection {conn}",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn the_vault_module_grants_read_only_secret_access() {
    let kv = read("infra/cipp-access.bicep");
    balanced(&kv, "cipp-access.bicep");
    assert!(read("infra/main.bicep").contains("module cippAccess 'cipp-access.bicep'"));
    assert!(kv.contains("0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"), "Table Data Contributor on CIPP's storage for Part C");
    assert!(kv.contains("4633458b-17de-408a-b874-0445c86b69e6"), "Key Vault Secrets User");
    assert!(kv.contains("secrets: ['get', 'list']"));
    assert!(!kv.contains("'set'") && !kv.contains("'delete'"), "read only");
    let declared = params(&read("infra/main.bicep"));
    let bicepparam = read("infra/main.bicepparam");
    assert!(bicepparam.starts_with("using 'main.bicep'"));
    for p in bicepparam.lines().filter_map(|l| l.strip_prefix("param ")?.split_whitespace().next()) {
        assert!(declared.contains(p), "main.bicepparam sets {p}, which main.bicep declares");
    }
}

/// The text of `resource <sym> …` up to the next top-level declaration.
fn block<'a>(bicep: &'a str, sym: &str) -> &'a str {
    let start = bicep.find(&format!("resource {sym} ")).unwrap_or_else(|| panic!("resource {sym}"));
    let rest = &bicep[start..];
    let end = rest[1..].find("\nresource ").or_else(|| rest[1..].find("\nmodule ")).map_or(rest.len(), |e| e + 1);
    &rest[..end]
}

#[test]
fn azure_monitor_alert_rules_target_app_insights_and_the_action_group() {
    let main = read("infra/main.bicep");
    let res = resources(&main);
    assert!(res.iter().any(|(s, t, _)| s == "monitorGroup" && t == "Microsoft.Insights/actionGroups"));
    assert!(res.iter().any(|(s, t, _)| s == "monitorAlerts" && t == "Microsoft.Insights/scheduledQueryRules"));
    let rules = block(&main, "monitorAlerts");
    assert!(rules.contains("scopes: [insights.id]"), "every rule queries the App Insights resource");
    assert!(rules.contains("actionGroups: [monitorGroup.id]"), "every rule notifies the action group");
    assert!(rules.contains("for rule in monitorRules"), "one rule per entry");
    let group = block(&main, "monitorGroup");
    assert!(group.contains("in monitorEmails") && group.contains("in monitorWebhookUrls"), "receivers are parameters");
    let p = params(&main);
    assert!(p.contains("monitorEmails") && p.contains("monitorWebhookUrls"));
    // The four rules, by name, with their queries as text.
    let list =
        &main[main.find("var monitorRules").expect("var monitorRules")..main.find("resource monitorAlerts").unwrap()];
    for (name, query) in [
        ("alerts", r#"traces | where tostring(customDimensions.alert) == "true""#),
        ("poison", r#"tostring(customDimensions.kind) == "poison-message""#),
        ("undelivered", r#"traces | where tostring(customDimensions.undelivered) == "true""#),
        ("watchdog", r#"requests | where name == "WatchTimer" and success == true"#),
    ] {
        assert!(list.contains(&format!("name: '{name}'")), "rule {name}");
        assert!(list.contains(query), "rule {name} queries {query}");
    }
    // The watchdog fires when WatchTimer has not succeeded for 10 minutes.
    let watchdog = &list[list.find("name: 'watchdog'").unwrap()..];
    assert!(watchdog.contains("window: 'PT10M'") && watchdog.contains("operator: 'LessThan'"));
    assert!(watchdog.contains("threshold: 1"));
    // The dimensions the rules select on are the ones caguard sends.
    let dims = read("handler/src/alert/mod.rs") + &read("handler/src/alert/deliver.rs");
    for d in ["(\"alert\", \"true\")", "(\"undelivered\", \"true\")", "(\"kind\","] {
        assert!(dims.contains(d), "caguard sends the dimension {d}");
    }
}

#[test]
fn key_vault_references_resolve_and_a_redeploy_keeps_the_settings_the_docs_name() {
    let main = read("infra/main.bicep");
    assert!(block(&main, "app").contains("keyVaultReferenceIdentity: identity.id"));
    let deploy = read("docs/deploy.md") + &read("docs/alerts.md");
    // Every CAGUARD_ setting the docs tell a person to set for a deployment is in
    // the Bicep's app settings (from a parameter), not left to a hand edit.
    for setting in ["CAGUARD_TEAMS_WEBHOOK_URL", "CAGUARD_SLACK_WEBHOOK_URL", "CAGUARD_ALERT_WEBHOOK_URL"] {
        assert!(deploy.contains(setting), "the docs mention {setting}");
        assert!(main.contains(&format!("name: '{setting}'")), "{setting} is a Bicep app setting");
    }
    for p in ["teamsWebhookUrl", "slackWebhookUrl", "alertWebhookUrl"] {
        let decl = main.find(&format!("param {p} ")).unwrap_or_else(|| panic!("param {p}"));
        assert!(main[..decl].trim_end().ends_with("@secure()"), "{p} is a secure parameter");
    }
}
