//! The institution's branding over HTTP (`[branding]`, issue 18): `GET /api/v1/display` gives
//! the name, the logo's URL and the accent with its shades; the logo comes from its own route
//! as the image it is, with `nosniff`, a policy that runs nothing, and a cache lifetime tied to
//! the version in its URL. A server without the section gives nulls and no logo, and a server
//! whose logo is missing or unsafe does not start.

use crate::common::{TestServer, sample_png};
use huizhen::config::Config;
use huizhen::server::Server;

/// A server branded with `logo` (written to a file of its own) and a green accent.
async fn branded(logo: &[u8]) -> (TestServer, tempfile::TempDir) {
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("logo.png");
    std::fs::write(&path, logo).unwrap();
    let s = TestServer::start_with(|c| {
        c.branding.name_zh = "某某县人民医院".into();
        c.branding.name_en = "County People's Hospital".into();
        c.branding.logo_file = path.display().to_string();
        c.branding.accent = "#1A7F37".into();
    })
    .await;
    (s, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_learn_the_branding_and_fetch_the_logo_with_safe_cacheable_headers() {
    let png = sample_png();
    let (s, _files) = branded(&png).await;

    // Public, like the time zone: the join and code pages ask before anyone signs in.
    let (status, display) = s.api("GET", "/api/v1/display", Some(""), None).await;
    assert_eq!(status, 200, "{display}");
    let b = &display["branding"];
    assert_eq!(b["name"]["zh-CN"], "某某县人民医院");
    assert_eq!(b["name"]["en"], "County People's Hospital");
    assert_eq!(b["accent"]["color"], "#1a7f37");
    assert_eq!(b["accent"]["on_color"], "#ffffff");
    for key in ["ink_light", "ink_dark"] {
        let ink = b["accent"][key].as_str().unwrap();
        assert!(
            ink.len() == 7 && ink.starts_with('#'),
            "{key} is a colour: {ink}"
        );
    }
    let logo_url = b["logo_url"].as_str().unwrap();
    let version = logo_url
        .strip_prefix("/api/v1/display/logo/")
        .expect("the logo's URL names its version");
    assert_eq!(version.len(), 16);

    // The versioned URL: the image, typed by its bytes, cached for long.
    let resp = s
        .http
        .get(format!("{}{logo_url}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "image/png");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(h["content-security-policy"], "default-src 'none'; sandbox");
    assert_eq!(h["cross-origin-resource-policy"], "same-origin");
    let etag = h["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, format!("\"{version}\""));
    assert_eq!(resp.bytes().await.unwrap().as_ref(), png.as_slice());

    // Under another version (a page that learnt an older logo): the current one, revalidated
    // every time.
    for path in [
        "/api/v1/display/logo/0000000000000000",
        "/api/v1/display/logo/x",
    ] {
        let resp = s
            .http
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(
            resp.headers()["cache-control"],
            "public, no-cache",
            "{path}"
        );
        assert_eq!(resp.headers()["content-type"], "image/png");
    }

    // Revalidation: the same bytes are not sent again.
    let resp = s
        .http
        .get(format!("{}/api/v1/display/logo/old", s.base))
        .header("if-none-match", format!("\"other\", {etag}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
    assert_eq!(resp.headers()["etag"].to_str().unwrap(), etag);
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = s
        .http
        .get(format!("{}{logo_url}", s.base))
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_branding_the_pages_keep_their_look_and_there_is_no_logo() {
    let s = TestServer::start().await;
    let (status, display) = s.api("GET", "/api/v1/display", Some(""), None).await;
    assert_eq!(status, 200);
    let b = &display["branding"];
    assert!(
        b["name"].is_null() && b["logo_url"].is_null() && b["accent"].is_null(),
        "{b}"
    );
    let (status, body) = s
        .api(
            "GET",
            "/api/v1/display/logo/0000000000000000",
            Some(""),
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    s.stop().await;
}

/// The configuration the test servers use, with `tweak`.
fn config(dir: &std::path::Path, tweak: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.server.cert_dir = dir.join("certs");
    c.storage.data_dir = dir.join("data");
    c.media.udp_bind = "127.0.0.1:0".parse().unwrap();
    c.metrics.listen = String::new();
    tweak(&mut c);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_unsafe_logo_or_a_faint_colour_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("logo.svg");
    std::fs::write(
        &svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>",
    )
    .unwrap();
    let named = |c: &mut Config| {
        c.branding.name_zh = "某某医院".into();
        c.branding.name_en = "A Hospital".into();
    };
    let cases: [(Config, &str); 3] = [
        (
            config(dir.path(), |c| {
                named(c);
                c.branding.logo_file = dir.path().join("missing.png").display().to_string();
            }),
            "missing.png",
        ),
        (
            config(dir.path(), |c| {
                named(c);
                c.branding.logo_file = svg.display().to_string();
            }),
            "not a PNG or JPEG",
        ),
        (
            config(dir.path(), |c| c.branding.accent = "#fff3b0".into()),
            "too faint",
        ),
    ];
    for (config, expected) in cases {
        let err = match Server::start(config).await {
            Ok(_) => panic!("started with a bad [branding] ({expected})"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains("branding.") && err.contains(expected), "{err}");
    }
}
