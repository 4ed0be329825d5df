//! The dashboard and the alarms of `infra/template.yaml` against the metrics the
//! code emits (`api::metrics::METRICS`): every metric the template reads is one
//! the code writes, with exactly its labels as dimensions (an EMF metric is
//! stored under the whole set of its dimensions: a subset or a superset reads
//! nothing), the dashboard shows every metric, and the alarms the operations
//! docs promise exist and notify the alarm topic.

use std::collections::{BTreeMap, BTreeSet};

use api::metrics::{LIFECYCLE_EVENTS, LIFECYCLE_OUTCOMES, METRICS, NAMESPACE, PAGE_OUTCOMES};
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

fn template() -> Yaml {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).expect("template")).expect("YAML")
}

/// One read of a metric of the namespace: its name and dimensions (name → value,
/// the value `None` for a SEARCH, which names dimensions without values).
#[derive(Debug)]
struct Read {
    whence: String,
    name: String,
    dimensions: BTreeMap<String, Option<String>>,
}

fn resources(template: &Yaml, kind: &str) -> Vec<(String, Yaml)> {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(id, r)| (id.as_str().unwrap().to_string(), r["Properties"].clone()))
        .collect()
}

fn yaml_dimensions(list: &Yaml) -> BTreeMap<String, Option<String>> {
    list.as_sequence()
        .map(|dims| {
            dims.iter()
                .map(|d| {
                    (
                        d["Name"].as_str().expect("Name").to_string(),
                        d["Value"].as_str().map(str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn alarm_reads(id: &str, alarm: &Yaml) -> Vec<Read> {
    let mut reads = Vec::new();
    let mut one = |metric: &Yaml| {
        if metric["Namespace"].as_str() == Some(NAMESPACE) {
            reads.push(Read {
                whence: format!("alarm {id}"),
                name: metric["MetricName"]
                    .as_str()
                    .expect("MetricName")
                    .to_string(),
                dimensions: yaml_dimensions(&metric["Dimensions"]),
            });
        }
    };
    one(alarm);
    for query in alarm["Metrics"].as_sequence().into_iter().flatten() {
        one(&query["MetricStat"]["Metric"]);
    }
    reads
}

/// `SEARCH('{FocalMigrations,a,b} MetricName="x" a="v"', …)`: the schema's
/// dimensions and the metric name.
fn search_read(expression: &str) -> Option<Read> {
    let schema = expression.split_once(&format!("{{{NAMESPACE},"))?.1;
    let (dims, rest) = schema.split_once('}')?;
    let name = rest.split_once("MetricName=\"")?.1.split_once('"')?.0;
    Some(Read {
        whence: "dashboard SEARCH".into(),
        name: name.to_string(),
        dimensions: dims
            .split(',')
            .map(|d| (d.trim().to_string(), None))
            .collect(),
    })
}

fn dashboard_reads(body: &Json) -> Vec<Read> {
    let mut reads = Vec::new();
    for widget in body["widgets"].as_array().expect("widgets") {
        for row in widget["properties"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let row = row.as_array().expect("a metrics row");
            if let Some(expression) = row[0]["expression"].as_str() {
                reads.extend(search_read(expression));
            } else if row[0] == NAMESPACE {
                // [namespace, name, dim, value, dim, value, …, {options}?]
                let strings: Vec<&str> = row.iter().map_while(Json::as_str).collect();
                reads.push(Read {
                    whence: format!("dashboard {:?}", widget["properties"]["title"]),
                    name: strings[1].to_string(),
                    dimensions: strings[2..]
                        .chunks(2)
                        .map(|pair| (pair[0].to_string(), pair.get(1).map(|v| v.to_string())))
                        .collect(),
                });
            }
        }
    }
    reads
}

fn dashboard(template: &Yaml) -> Json {
    let dashboards = resources(template, "AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1, "one dashboard");
    let body = &dashboards[0].1["DashboardBody"];
    let Yaml::Tagged(sub) = body else {
        panic!("DashboardBody is a !Sub: {body:?}")
    };
    let text = sub.value.as_str().expect("!Sub of a string");
    // ${AWS::Region}, ${Queue.QueueName}: any value keeps the JSON valid.
    let mut plain = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        plain.push_str(&rest[..at]);
        plain.push('X');
        rest = &rest[at + rest[at..].find('}').expect("}") + 1..];
    }
    plain.push_str(rest);
    serde_json::from_str(&plain).expect("the dashboard body is JSON")
}

#[test]
fn dashboard_and_alarms_read_the_metrics_the_code_writes() {
    let template = template();
    let labels: BTreeMap<&str, BTreeSet<&str>> = METRICS
        .iter()
        .map(|m| (m.name, m.labels.iter().copied().collect()))
        .collect();
    let document = serde_json::to_value(api::openapi::document()).expect("document");
    let mut reads = dashboard_reads(&dashboard(&template));
    let on_dashboard: BTreeSet<String> = reads.iter().map(|r| r.name.clone()).collect();
    let alarms = resources(&template, "AWS::CloudWatch::Alarm");
    let mut alarmed = BTreeSet::new();
    for (id, alarm) in &alarms {
        let these = alarm_reads(id, alarm);
        if !these.is_empty() {
            // Notified like the existing alarms: the optional topic.
            let actions = serde_yaml::to_string(&alarm["AlarmActions"]).unwrap();
            assert!(actions.contains("AlarmTopicArn"), "{id}: {actions}");
        }
        alarmed.extend(these.iter().map(|r| r.name.clone()));
        reads.extend(these);
    }

    let mut problems = Vec::new();
    for read in &reads {
        let Some(wanted) = labels.get(read.name.as_str()) else {
            problems.push(format!(
                "{}: {} is not a metric the code emits",
                read.whence, read.name
            ));
            continue;
        };
        let dims: BTreeSet<&str> = read.dimensions.keys().map(String::as_str).collect();
        if &dims != wanted {
            problems.push(format!(
                "{}: {} read with dimensions {dims:?}, emitted with {wanted:?}",
                read.whence, read.name
            ));
        }
        for (dim, value) in &read.dimensions {
            let Some(value) = value else { continue };
            let known = match dim.as_str() {
                "outcome" if read.name == LIFECYCLE_EVENTS => {
                    LIFECYCLE_OUTCOMES.contains(&value.as_str())
                }
                "outcome" => PAGE_OUTCOMES.contains(&value.as_str()),
                "status" => ["1xx", "2xx", "3xx", "4xx", "5xx"].contains(&value.as_str()),
                "method" => ["GET", "PUT", "POST"].contains(&value.as_str()),
                // A route of the API, as axum's template spells it.
                "route" => document["paths"].get(value).is_some(),
                _ => false,
            };
            if !known {
                problems.push(format!("{}: {dim}={value} is never emitted", read.whence));
            }
        }
    }
    let emitted: BTreeSet<String> = labels.keys().map(|n| n.to_string()).collect();
    for missing in emitted.difference(&on_dashboard) {
        problems.push(format!("{missing} is not on the dashboard"));
    }
    for wanted in [
        "http_responses",
        "reconcile_duration",
        "session_count_stream_lag",
        "rollouts_halted",
    ] {
        if !alarmed.contains(wanted) {
            problems.push(format!("no alarm reads {wanted}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Not vacuous: both the dashboard's kinds of rows and the alarms were read.
    assert!(reads.iter().any(|r| r.whence == "dashboard SEARCH"));
    assert!(reads.len() >= 15, "{reads:?}");
}

#[test]
fn a_wrong_dimension_or_name_is_seen() {
    // The parsing above would notice: a SEARCH with another schema, a row of
    // another metric.
    let read =
        search_read("SEARCH('{FocalMigrations,action} MetricName=\"reconciles\"', 'Sum', 60)")
            .expect("read");
    assert_eq!(read.name, "reconciles");
    assert_eq!(read.dimensions.keys().collect::<Vec<_>>(), ["action"]);
    let body = serde_json::json!({"widgets": [{"properties": {"title": "t", "metrics": [
        ["FocalMigrations", "marking_pages", "outcome", "failed", {"stat": "Sum"}],
        ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "q"]]}}]});
    let reads = dashboard_reads(&body);
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].dimensions["outcome"].as_deref(), Some("failed"));
}

/// A short-form intrinsic (`!Ref X`, `!GetAtt X.Arn`) as text, to compare.
fn intrinsic(value: &Yaml) -> String {
    match value {
        Yaml::Tagged(tagged) => {
            let inner = match &tagged.value {
                Yaml::String(text) => text.clone(),
                Yaml::Sequence(parts) => parts
                    .iter()
                    .map(|p| p.as_str().unwrap_or("?").to_owned())
                    .collect::<Vec<_>>()
                    .join("."),
                other => format!("{other:?}"),
            };
            format!("{} {inner}", tagged.tag)
        }
        other => format!("{other:?}"),
    }
}

/// The functions that change plans send lifecycle events: each is given the
/// stack's bus and may `PutEvents` to it (and to nothing else), and may delete
/// the outbox entry of what it sent; the example rule routes a halted rollout
/// from that bus to the alarm topic.
#[test]
fn the_functions_that_change_plans_may_send_to_the_stacks_bus() {
    let template = template();
    let functions = resources(&template, "AWS::Serverless::Function");
    let mut senders = BTreeSet::new();
    for (id, function) in &functions {
        let Some(given) = function["Environment"]["Variables"].get("EVENT_BUS_NAME") else {
            continue;
        };
        assert_eq!(intrinsic(given), "!Ref LifecycleEventBus", "{id}");
        senders.insert(id.clone());
        let role = intrinsic(&function["Role"]);
        let role = role
            .strip_prefix("!GetAtt ")
            .and_then(|r| r.strip_suffix(".Arn"))
            .unwrap_or_else(|| panic!("{id}: a role of the stack, not {role}"));
        let statements = &template["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]
            ["Statement"];
        let puts: Vec<&Yaml> = statements
            .as_sequence()
            .expect("statements")
            .iter()
            .filter(|s| s["Action"].as_str() == Some("events:PutEvents"))
            .collect();
        assert_eq!(puts.len(), 1, "{id}: one PutEvents statement");
        assert_eq!(
            intrinsic(&puts[0]["Resource"]),
            "!GetAtt LifecycleEventBus.Arn",
            "{id}: only to the stack's bus"
        );
        let deletes_in_main = statements.as_sequence().unwrap().iter().any(|s| {
            intrinsic(&s["Resource"]) == "!GetAtt MainTable.Arn"
                && s["Action"]
                    .as_sequence()
                    .is_some_and(|a| a.iter().any(|a| a.as_str() == Some("dynamodb:DeleteItem")))
        });
        assert!(deletes_in_main, "{id}: may settle the outbox entry");
    }
    // Every function that changes a plan's status: operators' calls, the guard's
    // halts (reconciles, outcome reports), the end of a marking walk, the sweep.
    assert_eq!(
        senders,
        BTreeSet::from([
            "PlansFunction".to_owned(),
            "DeploymentsFunction".to_owned(),
            "SessionsFunction".to_owned(),
            "MarkSessionsFunction".to_owned(),
        ])
    );
    let rules = resources(&template, "AWS::Events::Rule");
    let (_, halted) = rules
        .iter()
        .find(|(_, rule)| intrinsic(&rule["EventBusName"]) == "!Ref LifecycleEventBus")
        .expect("a rule on the bus");
    assert_eq!(halted["EventPattern"]["source"][0], "focal.migrations");
    assert_eq!(halted["EventPattern"]["detail-type"][0], "Rollout Halted");
    assert_eq!(
        intrinsic(&halted["Targets"][0]["Arn"]),
        "!Ref AlarmTopicArn"
    );
}
