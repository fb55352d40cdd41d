//! `/api/v1/reports`: response times against the targets, and the
//! monthly report for funders and managers (supervisors and admins). The
//! figures are computed in [`crate::report`] and [`crate::monthly`].

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::header::{ACCEPT, ACCEPT_LANGUAGE, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Supervisor;
use super::error::ErrorBody;
use super::extract::ApiQuery;
use super::routes::Routes;
use super::{ApiError, AppState, query};
use crate::domain::reach::Lang;
use crate::monthly::{self, Month, MonthlyReport};
use crate::report::{self, GroupBy, ReportRow, Targets};

/// The window when `from` is not given: the last 7 days.
pub const DEFAULT_WINDOW: Duration = Duration::days(7);
/// The longest window one report reads.
pub const MAX_WINDOW: Duration = Duration::days(400);

pub fn routes() -> Routes {
    Routes::new()
        .get("/api/v1/reports/response-times", response_times)
        .get("/api/v1/reports/monthly", monthly_report)
}

/// The report routes alone.
pub fn router() -> axum::Router<AppState> {
    routes().into_router()
}

/// Which incidents and how to group them; every parameter optional.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Incidents created at or after this RFC 3339 time (default: `to`
    /// minus 7 days).
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    pub from: Option<String>,
    /// …and before this one (default: now).
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    pub to: Option<String>,
    /// `priority` (default), `steward`, `grid` or `hour` (of the day, in
    /// the site's local time).
    pub group_by: Option<String>,
    /// `csv` for CSV, as with `Accept: text/csv` (for download links).
    pub format: Option<String>,
}

/// The window and grouping a report covers.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportWindow {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub group_by: GroupBy,
}

impl ReportQuery {
    pub fn window(&self, now: DateTime<Utc>) -> Result<ReportWindow, ApiError> {
        let to = query::time("to", self.to.as_deref())?.unwrap_or(now);
        let from = query::time("from", self.from.as_deref())?.unwrap_or(to - DEFAULT_WINDOW);
        if from >= to {
            return Err(ApiError::invalid_query("from", "must be before to"));
        }
        if to - from > MAX_WINDOW {
            return Err(ApiError::invalid_query(
                "from",
                format!(
                    "the window is longer than {} days; ask for less",
                    MAX_WINDOW.num_days()
                ),
            ));
        }
        let group_by =
            query::one("group_by", self.group_by.as_deref())?.unwrap_or(GroupBy::Priority);
        Ok(ReportWindow { from, to, group_by })
    }
}

/// A response-time report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResponseTimeReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub group_by: GroupBy,
    /// The targets the `*_within_target_pct` figures are measured against.
    pub targets: Targets,
    /// One row per group that has incidents.
    pub groups: Vec<ReportRow>,
}

/// Response times per group: time to acknowledge and to arrive.
///
/// Measured from each incident's `created_at` (the dispatcher's receive
/// time) to `acknowledged_at` and `on_site_at`, in seconds. `count`
/// includes cancelled incidents; each percentile (nearest-rank: the value
/// at rank ceil(p/100 × n) of the n sorted samples) and each
/// within-target share covers only incidents with that timestamp
/// (`ack_n`, `arrive_n`); `null` without a sample. With `Accept: text/csv`
/// (or `?format=csv`) the same rows come as CSV with a header line.
#[utoipa::path(get, path = "/api/v1/reports/response-times", tag = "reports", security(("bearer" = [])),
    params(ReportQuery),
    responses(
        (status = 200, description = "The report; with `Accept: text/csv` the rows as CSV with a header line",
            content(
                (ResponseTimeReport = "application/json"),
                (String = "text/csv"),
            )),
        (status = 400, description = "A bad query parameter, named", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Supervisors and admins only", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username))]
pub async fn response_times(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    let csv = match q.format.as_deref().map(str::trim) {
        None | Some("") => wants_csv(&headers),
        Some("csv") => true,
        Some("json") => false,
        Some(other) => {
            return Err(ApiError::invalid_query(
                "format",
                format!("{other:?} is not csv or json"),
            ));
        }
    };
    let window = q.window(state.clock.now())?;
    let mut incidents = state
        .store
        .incidents_created_between(window.from, window.to)
        .await?;
    // A scoped supervisor's report covers their elders' incidents only.
    if let Some(elders) = user.view.elder_ids(state.store.as_ref()).await? {
        incidents.retain(|i| i.elder_id.as_ref().is_some_and(|e| elders.contains(e)));
    }
    let grids: HashMap<_, _> = if window.group_by == GroupBy::Grid {
        state
            .store
            .elders()
            .await?
            .into_iter()
            .map(|e| (e.id, e.grid))
            .collect()
    } else {
        HashMap::new()
    };
    let notify = &state.settings.notify;
    let targets = Targets {
        ack_s: notify.target_ack_s(),
        arrive_s: notify.target_arrive_s(),
    };
    let groups = report::response_times(
        &incidents,
        window.group_by,
        &grids,
        targets,
        state.settings.rules.night.utc_offset_min,
    );
    if csv {
        let mut response = report::to_csv(&groups).into_response();
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        return Ok(response);
    }
    Ok(Json(ResponseTimeReport {
        from: window.from,
        to: window.to,
        group_by: window.group_by,
        targets,
        groups,
    })
    .into_response())
}

/// Which month, which community, which format.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonthlyQuery {
    /// `YYYY-MM`, a month of the site's calendar (default: the current
    /// one, so far).
    #[param(pattern = "^2[0-9]{3}-(0[1-9]|1[0-2])$")]
    pub month: Option<String>,
    /// Only the grids of this community (as the areas name it); empty or
    /// absent: the whole site. A community without grids gives an empty
    /// report.
    pub community: Option<String>,
    /// `json` (default), `csv` (as with `Accept: text/csv`) or `pdf` (as
    /// with `Accept: application/pdf`), for download links.
    #[param(pattern = "^(json|csv|pdf)?$")]
    pub format: Option<String>,
    /// The PDF's language, `zh` or `en` (default: the one of those two
    /// `Accept-Language` prefers, else the site's notification language).
    #[param(pattern = "^(zh|en)?$")]
    pub lang: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Json,
    Csv,
    Pdf,
}

/// The monthly report: per grid, per community and for the site, calls
/// answered within 60 s and 180 s (the TSA's 97.5 % and 99 % as
/// references), arrivals within the target, the false-alarm rate, visits
/// done against plan, follow-ups done and devices whose test call passed.
///
/// Every figure is defined in the dispatcher's `monthly` module: a thing
/// belongs to the month of its site-local date; each percentage is of
/// summed counts, to one decimal, and `null` without a denominator. With
/// `format=csv` (or `Accept: text/csv`) one CSV row per grid, a subtotal
/// row per community and the total last; with `format=pdf` (or `Accept:
/// application/pdf`) a printable A4 PDF, in Chinese or English (`lang`).
#[utoipa::path(get, path = "/api/v1/reports/monthly", tag = "reports", security(("bearer" = [])),
    params(MonthlyQuery),
    responses(
        (status = 200, description = "The report; as CSV or PDF when asked",
            content(
                (MonthlyReport = "application/json"),
                (String = "text/csv"),
                (String = "application/pdf"),
            )),
        (status = 400, description = "A bad month, format or lang, named", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Supervisors and admins only", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username))]
pub async fn monthly_report(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<MonthlyQuery>,
) -> Result<Response, ApiError> {
    let format = match q.format.as_deref().map(str::trim) {
        None | Some("") if wants_pdf(&headers) => Format::Pdf,
        None | Some("") if wants_csv(&headers) => Format::Csv,
        None | Some("") | Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        Some("pdf") => Format::Pdf,
        Some(other) => {
            return Err(ApiError::invalid_query(
                "format",
                format!("{other:?} is not json, csv or pdf"),
            ));
        }
    };
    let lang = match q.lang.as_deref().map(str::trim) {
        None | Some("") => accepted_lang(&headers).unwrap_or(state.settings.notify.language),
        Some(l) => match l {
            "zh" => Lang::Zh,
            "en" => Lang::En,
            other => {
                return Err(ApiError::invalid_query(
                    "lang",
                    format!("{other:?} is not zh or en"),
                ));
            }
        },
    };
    let offset = state.settings.rules.night.utc_offset_min;
    let month = match q.month.as_deref().map(str::trim) {
        None | Some("") => Month::of(state.clock.now(), offset),
        Some(m) => Month::parse(m).map_err(|e| ApiError::invalid_query("month", e))?,
    };
    let community = q
        .community
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    let window = month.window(offset, state.settings.notify.target_arrive_s(), community);
    let mut counts = state.store.monthly_counts(&window).await?;
    // A scoped supervisor's report covers their grids only.
    counts.retain(|g| user.view.sees_grid(&g.grid));
    let report = monthly::build(month, &window, offset, counts);
    let name = format!("monthly-{}", report.month);
    let file = |bytes: Vec<u8>, mime: &'static str, ext: &str| {
        let mut response = bytes.into_response();
        let h = response.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(mime));
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.{ext}\"")) {
            h.insert(CONTENT_DISPOSITION, v);
        }
        response
    };
    Ok(match format {
        Format::Json => Json::<MonthlyReport>(report).into_response(),
        Format::Csv => {
            let csv = monthly::to_csv(&report)
                .map_err(|e| ApiError::Internal(format!("monthly CSV: {e}")))?;
            file(csv.into_bytes(), "text/csv; charset=utf-8", "csv")
        }
        Format::Pdf => {
            // Subsetting the font and compressing take a city's report
            // about 100 ms: off the workers that also take the alarms.
            let pdf = tokio::task::spawn_blocking(move || monthly::pdf::to_pdf(&report, lang))
                .await
                .map_err(|e| ApiError::Internal(format!("monthly PDF: {e}")))?
                .map_err(|e| ApiError::Internal(format!("monthly PDF: {e:#}")))?;
            file(pdf, "application/pdf", "pdf")
        }
    })
}

/// The language `Accept-Language` prefers among those we write: the
/// highest quality, the first of equals.
fn accepted_lang(headers: &HeaderMap) -> Option<Lang> {
    let mut best: Option<(f32, Lang)> = None;
    for v in headers.get_all(ACCEPT_LANGUAGE) {
        let Ok(v) = v.to_str() else { continue };
        for range in v.split(',') {
            let mut params = range.split(';');
            let Some(lang) = Lang::parse(params.next().unwrap_or_default().trim()) else {
                continue;
            };
            let q = params
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())
                .unwrap_or(0.0);
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
    }
    best.map(|(_, l)| l)
}

/// Whether `Accept` names `application/pdf` with a quality above 0.
fn wants_pdf(headers: &HeaderMap) -> bool {
    headers.get_all(ACCEPT).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').any(|range| {
                let mut params = range.split(';');
                let essence = params.next().unwrap_or_default().trim();
                essence.eq_ignore_ascii_case("application/pdf")
                    && params
                        .filter_map(|p| p.trim().strip_prefix("q="))
                        .find_map(|v| v.trim().parse::<f32>().ok())
                        .unwrap_or(1.0)
                        > 0.0
            })
        })
    })
}

/// Whether `Accept` asks for CSV: `text/csv` listed with a quality above
/// 0 and at least that of any JSON it also lists.
fn wants_csv(headers: &HeaderMap) -> bool {
    let mut csv_q: Option<f32> = None;
    let mut json_q: Option<f32> = None;
    for value in headers.get_all(ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let mut params = range.split(';');
            let essence = params
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            let q = params
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|v| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let slot = match essence.as_str() {
                "text/csv" => &mut csv_q,
                "application/json" => &mut json_q,
                _ => continue,
            };
            *slot = Some(slot.map_or(q, |s| s.max(q)));
        }
    }
    match csv_q {
        Some(c) if c > 0.0 => json_q.is_none_or(|j| c >= j),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, v.parse().unwrap());
        h
    }

    #[test]
    fn csv_when_accept_prefers_it() {
        assert!(!wants_csv(&HeaderMap::new()));
        assert!(wants_csv(&accept("text/csv")));
        assert!(wants_csv(&accept("text/csv; charset=utf-8")));
        assert!(wants_csv(&accept("application/json;q=0.5, text/csv")));
        assert!(!wants_csv(&accept("application/json, text/csv;q=0.5")));
        assert!(!wants_csv(&accept("text/csv;q=0")));
        assert!(!wants_csv(&accept("*/*")));
        assert!(!wants_csv(&accept("application/json")));
    }

    #[test]
    fn windows_default_to_the_last_week() {
        let now: DateTime<Utc> = "2026-11-28T12:00:00Z".parse().unwrap();
        let w = ReportQuery::default().window(now).unwrap();
        assert_eq!((w.from, w.to), (now - Duration::days(7), now));
        assert_eq!(w.group_by, GroupBy::Priority);

        let q = ReportQuery {
            from: Some("2026-11-01T00:00:00+08:00".into()),
            to: Some("2026-11-02T00:00:00Z".into()),
            group_by: Some("hour".into()),
            ..Default::default()
        };
        let w = q.window(now).unwrap();
        assert_eq!(
            w.from,
            "2026-10-31T16:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(w.group_by, GroupBy::Hour);

        for (name, q) in [
            (
                "group_by",
                ReportQuery {
                    group_by: Some("day".into()),
                    ..Default::default()
                },
            ),
            (
                "from",
                ReportQuery {
                    from: Some("2026-12-01T00:00:00Z".into()),
                    ..Default::default()
                },
            ),
            (
                "to",
                ReportQuery {
                    to: Some("tomorrow".into()),
                    ..Default::default()
                },
            ),
            (
                "from",
                ReportQuery {
                    from: Some("2020-01-01T00:00:00Z".into()),
                    ..Default::default()
                },
            ),
        ] {
            let e = q.window(now).unwrap_err();
            assert!(e.to_string().contains(name), "{name}: {e}");
        }
    }
}
