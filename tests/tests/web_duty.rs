//! The board's Device duty view in a real browser (headless Chromium)
//! against the real server: a button that never ran its test call is
//! listed as missed, an elder whose alarms were mostly false is flagged
//! with the suggested change, and Apply changes the elder's limit.

use eldercare_tests::app::{Options, TestApp};
use eldercare_tests::browser::Browser;
use eldercare_tests::wait;
use serde_json::json;

const SUPERVISOR: &str = "sup";
const SUPERVISOR_PASSWORD: &str = "supervisor-password";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_duty_view_lists_missed_tests_and_applies_a_suggestion() {
    let app = TestApp::spawn(Options {
        // No grace: a button that has not passed a test is missed at once.
        env: vec![("ELDERCARE__DEVICE_DUTY__GRACE_DAYS".into(), "0".into())],
        ..Options::default()
    })
    .await;
    app.elder_with_device(
        "e-1",
        "btn-1",
        "call_button",
        json!({"inactivity_min": 120}),
    )
    .await;
    app.post(
        "/api/v1/users",
        json!({"username": SUPERVISOR, "password": SUPERVISOR_PASSWORD, "role": "supervisor"}),
    )
    .await;
    // Four inactivity alarms, all resolved as false alarms.
    let mut sensor = app.device("btn-1").await;
    for n in 0..4 {
        sensor
            .event(&format!("i-{n}"), "inactivity", json!({"minutes": 150}))
            .await;
        let open = wait::until("an open inactivity incident", || async {
            app.incidents("kind=inactivity&status=dispatching")
                .await
                .into_iter()
                .next()
        })
        .await;
        app.post(
            &format!("/api/v1/incidents/{}/resolve", open["id"].as_str().unwrap()),
            json!({"outcome": "false_alarm", "notes": "asleep in the chair"}),
        )
        .await;
    }

    let browser = Browser::start().await.unwrap();
    browser
        .log_in(&app.base, SUPERVISOR, SUPERVISOR_PASSWORD)
        .await
        .unwrap();
    browser.wait_path("/board/").await.unwrap();
    browser.click("nav a[data-view=duty]").await.unwrap();
    browser
        .wait_text("#duty-tests tbody", |t| {
            t.contains("btn-1") && t.contains("Missed")
        })
        .await
        .unwrap();
    let summary = browser
        .wait_text("#duty-summary", |t| !t.is_empty())
        .await
        .unwrap();
    assert!(summary.starts_with("1 missed"), "{summary}");
    let elders = browser
        .wait_text("#duty-elders tbody", |t| t.contains("100%"))
        .await
        .unwrap();
    assert!(
        elders.contains("Raise the inactivity limit from 120 to 180 min"),
        "{elders}"
    );
    browser
        .click("#duty-elders button[data-elder=e-1]")
        .await
        .unwrap();
    wait::until("the limit applied", || async {
        (app.get("/api/v1/elders/e-1").await["limits"]["inactivity_min"] == 180).then_some(())
    })
    .await;
    // The view reloads with the next step from the new limit.
    browser
        .wait_text("#duty-elders tbody", |t| t.contains("from 180 to 270 min"))
        .await
        .unwrap();

    browser.click("#lang").await.unwrap();
    browser
        .wait_text("#view-duty h2", |t| t == "设备值守")
        .await
        .unwrap();
    browser
        .wait_text("#duty-tests tbody", |t| t.contains("逾期未测"))
        .await
        .unwrap();
    browser.assert_no_console_errors().await;
}
