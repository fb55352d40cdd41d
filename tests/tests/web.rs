//! The web pages in a real browser (headless Chromium): served by the
//! dispatcher itself, no login no entry, login takes each role home.

use eldercare_tests::app::{ADMIN_PASSWORD, Options, TestApp};
use eldercare_tests::browser::Browser;

#[tokio::test]
async fn an_unauthenticated_visit_is_sent_to_login_and_login_takes_the_admin_to_the_board() {
    let app = TestApp::spawn(Options::default()).await;
    let browser = Browser::start().await.unwrap();

    browser.goto(&format!("{}/board/", app.base)).await.unwrap();
    browser.wait_path("/login").await.unwrap();

    browser
        .log_in(&app.base, "admin", ADMIN_PASSWORD)
        .await
        .unwrap();
    browser.wait_path("/board/").await.unwrap();
    assert_eq!(
        browser.console_errors().await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn a_wrong_password_says_so_and_stays_on_login() {
    let app = TestApp::spawn(Options::default()).await;
    let browser = Browser::start().await.unwrap();

    browser
        .log_in(&app.base, "admin", "not-the-password")
        .await
        .unwrap();
    let text = browser
        .wait_text("#login-error", |t| !t.is_empty())
        .await
        .unwrap();
    assert_eq!(text, "Wrong username or password.");
    browser.wait_path("/login").await.unwrap();
}

#[tokio::test]
async fn pages_are_served_compressed_with_etags_and_revalidate() {
    let app = TestApp::spawn(Options::default()).await;
    let res = app
        .http
        .get(format!("{}/assets/common/i18n.js", app.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();

    let again = app
        .http
        .get(format!("{}/assets/common/i18n.js", app.base))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    let missing = app
        .http
        .get(format!("{}/assets/nothing.js", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
