//! `POST /v1/months/{YYYY-MM}/close`: closes a month now, for an operator who cannot wait
//! for traffic after its end or for the wall clock (`[kafka] wall_clock_after`). Every worker
//! of this process moves its clock past the month's end (in the latest time zone of the
//! contracts) plus both engines' lateness, so the month's windows close and its final
//! reports are written. Events of the month that arrive afterwards count as late. With
//! several replicas, each must be asked (each holds its partitions' services).

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;

use super::{error, AppState};
use crate::config::Config;
use crate::engine::sla::intervals::month_bounds;

/// The end of `month` (`YYYY-MM`) in the latest of the contracts' time zones (UTC without
/// contracts), ns since the epoch.
pub fn month_end(config: &Config, month: &str) -> Result<i64, String> {
    let first = NaiveDate::parse_from_str(&format!("{month}-15"), "%Y-%m-%d")
        .map_err(|_| format!("month {month:?}: expected YYYY-MM"))?;
    let mid = first
        .and_hms_opt(12, 0, 0)
        .and_then(|t| t.and_utc().timestamp_nanos_opt())
        .ok_or_else(|| format!("month {month:?} is out of range"))?;
    let zones: Vec<chrono_tz::Tz> = match config.sla.contracts.as_slice() {
        [] => vec![chrono_tz::UTC],
        contracts => contracts.iter().map(|c| c.timezone).collect(),
    };
    zones
        .into_iter()
        .filter_map(|tz| month_bounds(tz, mid).map(|(_, end)| end))
        .max()
        .ok_or_else(|| format!("month {month:?} is out of range"))
}

/// 202 once every worker was asked; 400 for a bad month, 409 for one not over yet (the
/// token was checked before, `auth.rs`).
pub async fn close_month(State(state): State<Arc<AppState>>, path: Result<Path<String>, PathRejection>) -> Response {
    let month = match path {
        Ok(Path(month)) => month,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    let end = match month_end(&state.config, &month) {
        Ok(end) => end,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let until = crate::time::to_rfc3339(end);
    if end > crate::time::now_ns() {
        return error(
            StatusCode::CONFLICT,
            format!("month {month} is not over: it ends at {until}"),
        );
    }
    crate::pipeline::request_close(end);
    tracing::info!(%month, %until, "closing the month now, as asked");
    let body = serde_json::json!({ "closing": month, "until": until });
    (
        StatusCode::ACCEPTED,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_ends_in_the_latest_zone_of_the_contracts() {
        let utc = Config::default();
        let end = month_end(&utc, "2026-10").unwrap();
        assert_eq!(crate::time::to_rfc3339(end), "2026-11-01T00:00:00Z");
        let text = "[[sla.contracts]]\nservice = \"a\"\ntimezone = \"Europe/Berlin\"\n[[sla.contracts.objectives]]\nname = \"x\"\nkind = \"availability\"\ntarget = 99.0\n\
                    [[sla.contracts]]\nservice = \"b\"\ntimezone = \"America/New_York\"\n[[sla.contracts.objectives]]\nname = \"x\"\nkind = \"availability\"\ntarget = 99.0\n";
        let zoned = Config::parse(std::path::Path::new("c.toml"), text).unwrap();
        // New York's November starts at 04:00 UTC (daylight time ends on Nov 1, 2026).
        assert_eq!(
            crate::time::to_rfc3339(month_end(&zoned, "2026-10").unwrap()),
            "2026-11-01T04:00:00Z"
        );
        assert!(month_end(&utc, "2026-13").is_err());
        assert!(month_end(&utc, "October").is_err());
    }
}
