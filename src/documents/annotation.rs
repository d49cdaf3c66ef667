//! Annotations on a document page: a small, closed set of shapes in page coordinates (0..1 on
//! both axes, so they line up at any zoom), validated before they are stored or relayed.

use serde::{Deserialize, Serialize};

const MAX_POINTS: usize = 2000;
const MAX_TEXT_CHARS: usize = 500;
pub const MAX_PAGE: i64 = 10_000;

/// A point on the page: x and y from 0 (left/top) to 1 (right/bottom).
pub type Point = [f64; 2];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Shape {
    Arrow {
        from: Point,
        to: Point,
        #[serde(default)]
        color: Option<String>,
    },
    Circle {
        center: Point,
        radius: f64,
        #[serde(default)]
        color: Option<String>,
    },
    Freehand {
        points: Vec<Point>,
        #[serde(default)]
        color: Option<String>,
    },
    Text {
        at: Point,
        text: String,
        #[serde(default)]
        color: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("annotation is not a known shape (arrow, circle, freehand, text): {0}")]
    Malformed(String),
    #[error("annotation {0}")]
    Invalid(&'static str),
}

/// Parses and checks a shape as a client sent it.
pub fn parse(value: serde_json::Value) -> Result<Shape, ShapeError> {
    let shape: Shape =
        serde_json::from_value(value).map_err(|e| ShapeError::Malformed(e.to_string()))?;
    let on_page = |p: &Point| p.iter().all(|c| c.is_finite() && (0.0..=1.0).contains(c));
    let color_ok = |c: &Option<String>| {
        c.as_deref().is_none_or(|c| {
            c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit())
        })
    };
    let (points_ok, color) = match &shape {
        Shape::Arrow { from, to, color } => (on_page(from) && on_page(to), color),
        Shape::Circle {
            center,
            radius,
            color,
        } => (
            on_page(center) && radius.is_finite() && *radius > 0.0 && *radius <= 1.0,
            color,
        ),
        Shape::Freehand { points, color } => {
            if points.len() < 2 || points.len() > MAX_POINTS {
                return Err(ShapeError::Invalid("freehand needs 2 to 2000 points"));
            }
            (points.iter().all(on_page), color)
        }
        Shape::Text { at, text, color } => {
            let n = text.chars().count();
            if n == 0 || n > MAX_TEXT_CHARS || text.chars().any(|c| c.is_control() && c != '\n') {
                return Err(ShapeError::Invalid(
                    "text must be 1 to 500 printable characters",
                ));
            }
            (on_page(at), color)
        }
    };
    if !points_ok {
        return Err(ShapeError::Invalid(
            "coordinates must lie on the page (0 to 1)",
        ));
    }
    if !color_ok(color) {
        return Err(ShapeError::Invalid("color must be #rrggbb"));
    }
    Ok(shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_are_checked() {
        assert!(
            parse(json!({"type":"arrow","from":[0.1,0.1],"to":[0.5,0.5],"color":"#ff0000"}))
                .is_ok()
        );
        assert!(parse(json!({"type":"circle","center":[0.5,0.5],"radius":0.1})).is_ok());
        assert!(parse(json!({"type":"text","at":[0.2,0.2],"text":"ST 段抬高"})).is_ok());
        assert!(parse(json!({"type":"freehand","points":[[0,0],[1,1]]})).is_ok());
        for bad in [
            json!({"type":"arrow","from":[0.1,0.1],"to":[1.5,0.5]}),
            json!({"type":"circle","center":[0.5,0.5],"radius":-1}),
            json!({"type":"text","at":[0.2,0.2],"text":""}),
            json!({"type":"freehand","points":[[0,0]]}),
            json!({"type":"arrow","from":[0.1,0.1],"to":[0.2,0.2],"color":"red;x"}),
            json!({"type":"script","src":"x"}),
            json!({"type":"arrow","from":[0.1,0.1],"to":[0.2,0.2],"onclick":"x"}),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
    }
}
