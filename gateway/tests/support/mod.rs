//! Helpers shared by the gateway's integration tests (each test file includes it with
//! `mod support;`).

/// Drops a per-test PostgreSQL schema when the test ends, pass or fail.
pub struct PgSchemaGuard {
    pub url: String,
    pub schema: String,
}

impl Drop for PgSchemaGuard {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // Its own runtime on its own thread: this may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(pool) = sqlx::PgPool::connect(&url).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                        .execute(&pool)
                        .await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}
