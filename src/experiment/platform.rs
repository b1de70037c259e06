//! Platform shims the run needs and the algorithms must not see: a clock and a sleep that work
//! natively and in the browser (std's Instant and thread::sleep do not exist on wasm).

/// Waits `ms` milliseconds without blocking the browser's event loop (natively: sleeps).
pub async fn sleep_ms(ms: u32) {
    #[cfg(target_arch = "wasm32")]
    {
        use wasm_bindgen::JsCast;
        let promise = js_sys::Promise::new(&mut |resolve, _| {
            let set_timeout = js_sys::Reflect::get(&js_sys::global(), &"setTimeout".into()).ok().and_then(|f| f.dyn_into::<js_sys::Function>().ok());
            match set_timeout {
                Some(f) => drop(f.call2(&wasm_bindgen::JsValue::NULL, &resolve, &(ms as f64).into())),
                None => drop(resolve.call0(&wasm_bindgen::JsValue::NULL)),
            }
        });
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    }
    #[cfg(not(target_arch = "wasm32"))]
    std::thread::sleep(std::time::Duration::from_millis(ms as u64));
}

/// Seconds since an arbitrary origin; works natively and in the browser.
pub fn now_s() -> f64 {
    #[cfg(target_arch = "wasm32")]
    {
        // performance.now() (sub-millisecond, in pages and workers) where it exists, else Date.
        use wasm_bindgen::JsCast;
        let perf = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).ok().filter(|p| p.is_object());
        let ms = perf.and_then(|p| {
            let f = js_sys::Reflect::get(&p, &"now".into()).ok()?.dyn_into::<js_sys::Function>().ok()?;
            f.call0(&p).ok()?.as_f64()
        });
        ms.unwrap_or_else(js_sys::Date::now) / 1000.0
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        static T0: OnceLock<std::time::Instant> = OnceLock::new();
        T0.get_or_init(std::time::Instant::now).elapsed().as_secs_f64()
    }
}
