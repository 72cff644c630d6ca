//! The meter provider and exporters: [`TelemetryBuilder`], [`Telemetry`], the tracing layer.

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;

use super::{METER_NAME, OtelObserver};

/// Errors setting telemetry up.
#[derive(Debug)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The OTLP exporter could not be built.
    Otlp(String),
    /// The Prometheus exporter could not be built or rendered.
    Prometheus(String),
    /// Flushing or shutting down the provider failed.
    Sdk(String),
}

impl std::fmt::Display for TelemetryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TelemetryError::Otlp(e) => write!(f, "OTLP exporter: {e}"),
            TelemetryError::Prometheus(e) => write!(f, "Prometheus exporter: {e}"),
            TelemetryError::Sdk(e) => write!(f, "OpenTelemetry SDK: {e}"),
        }
    }
}

impl std::error::Error for TelemetryError {}

/// Builds a [`Telemetry`]: a meter provider with the resource attributes `service.name` and
/// `deployment.environment.name`, and the exporters asked for (metrics, and with the `otlp`
/// feature traces and security log records). With none, instruments still work and export nothing.
#[derive(Debug)]
pub struct TelemetryBuilder {
    inner: opentelemetry_sdk::metrics::MeterProviderBuilder,
    #[cfg(feature = "otlp")]
    resource: Resource,
    #[cfg(feature = "otlp")]
    traces: Option<(
        opentelemetry_sdk::trace::SdkTracerProvider,
        std::sync::Arc<crate::export::QueueGate>,
    )>,
    #[cfg(feature = "otlp")]
    logs: Option<(
        opentelemetry_sdk::logs::SdkLoggerProvider,
        std::sync::Arc<crate::export::QueueGate>,
    )>,
    #[cfg(feature = "otlp")]
    head_sampler: Option<crate::export::HeadSampler>,
    #[cfg(feature = "prometheus")]
    registry: Option<prometheus::Registry>,
}

/// True when `vars` sets any of `names` to something not blank.
#[cfg(feature = "otlp")]
fn any_set(vars: &dyn Fn(&str) -> Option<String>, names: &[&str]) -> bool {
    names
        .iter()
        .any(|v| vars(v).is_some_and(|s| !s.trim().is_empty()))
}

impl TelemetryBuilder {
    /// Adds a Prometheus registry, rendered by [`Telemetry::render_prometheus`] (for `/metrics`).
    ///
    /// # Errors
    /// [`TelemetryError::Prometheus`] if the exporter cannot be built.
    #[cfg(feature = "prometheus")]
    pub fn with_prometheus(mut self) -> Result<Self, TelemetryError> {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .build()
            .map_err(|e| TelemetryError::Prometheus(e.to_string()))?;
        self.inner = self.inner.with_reader(exporter);
        self.registry = Some(registry);
        Ok(self)
    }

    /// Adds OTLP/HTTP (protobuf) metric export. The standard `OTEL_EXPORTER_OTLP_*` variables
    /// (endpoint, headers, timeout) and `OTEL_METRIC_EXPORT_INTERVAL` apply.
    ///
    /// # Errors
    /// [`TelemetryError::Otlp`] if the exporter cannot be built.
    #[cfg(feature = "otlp")]
    pub fn with_otlp(mut self) -> Result<Self, TelemetryError> {
        use opentelemetry_otlp::{Protocol, WithExportConfig as _};
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()
            .map_err(|e| TelemetryError::Otlp(e.to_string()))?;
        self.inner = self.inner.with_periodic_exporter(exporter);
        Ok(self)
    }

    /// Adds OTLP/HTTP trace export: a batch span processor on its own thread behind a bounded
    /// queue (`OTEL_BSP_MAX_QUEUE_SIZE`, default 2048; `OTEL_BSP_SCHEDULE_DELAY`) that drops and
    /// counts (`sealcache.telemetry.dropped{signal="spans"}`) rather than block or grow. Sampling
    /// (`OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, default `parentbased_always_on`) is
    /// decided at the root by [`Telemetry::head_sampler`]; the SDK keeps what reaches it. Spans
    /// reach it through [`Telemetry::tracing_layer`].
    ///
    /// # Errors
    /// [`TelemetryError::Otlp`] if the exporter cannot be built.
    #[cfg(feature = "otlp")]
    pub fn with_otlp_traces(
        mut self,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, TelemetryError> {
        use crate::export::{GatedSpanProcessor, QueueGate, ReleasingSpanExporter};
        use opentelemetry_otlp::{Protocol, WithExportConfig as _};
        use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()
            .map_err(|e| TelemetryError::Otlp(e.to_string()))?;
        let queue = crate::export::queue_size(vars, "OTEL_BSP_MAX_QUEUE_SIZE");
        let gate = std::sync::Arc::new(QueueGate::new(queue));
        let head = crate::export::HeadSampler::from_vars(vars);
        let batch = BatchSpanProcessor::builder(ReleasingSpanExporter {
            inner: exporter,
            gate: gate.clone(),
        })
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(queue)
                .build(),
        )
        .build();
        let provider = SdkTracerProvider::builder()
            .with_resource(self.resource.clone())
            .with_sampler(head.sdk_sampler())
            .with_id_generator(head.id_generator())
            .with_span_processor(GatedSpanProcessor {
                inner: batch,
                gate: gate.clone(),
            })
            .build();
        self.traces = Some((provider, gate));
        self.head_sampler = Some(head);
        Ok(self)
    }

    /// Adds OTLP/HTTP log-record export of security events (`event.name` =
    /// `sealcache.security.<type>`), behind a bounded queue (`OTEL_BLRP_MAX_QUEUE_SIZE`, default
    /// 2048) that drops and counts (`sealcache.telemetry.dropped{signal="logs"}`).
    ///
    /// # Errors
    /// [`TelemetryError::Otlp`] if the exporter cannot be built.
    #[cfg(feature = "otlp")]
    pub fn with_otlp_logs(
        mut self,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, TelemetryError> {
        use crate::export::{GatedLogProcessor, QueueGate, ReleasingLogExporter};
        use opentelemetry_otlp::{Protocol, WithExportConfig as _};
        use opentelemetry_sdk::logs::{BatchConfigBuilder, BatchLogProcessor, SdkLoggerProvider};
        let exporter = opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()
            .map_err(|e| TelemetryError::Otlp(e.to_string()))?;
        let queue = crate::export::queue_size(vars, "OTEL_BLRP_MAX_QUEUE_SIZE");
        let gate = std::sync::Arc::new(QueueGate::new(queue));
        let batch = BatchLogProcessor::builder(ReleasingLogExporter {
            inner: exporter,
            gate: gate.clone(),
        })
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(queue)
                .build(),
        )
        .build();
        let provider = SdkLoggerProvider::builder()
            .with_resource(self.resource.clone())
            .with_log_processor(GatedLogProcessor {
                inner: batch,
                gate: gate.clone(),
            })
            .build();
        self.logs = Some((provider, gate));
        Ok(self)
    }

    /// OTLP export of each signal whose endpoint `vars` sets: metrics for
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, traces for it or
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, security log records for it or
    /// `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`; nothing otherwise (no push).
    ///
    /// # Errors
    /// As [`TelemetryBuilder::with_otlp`].
    #[cfg(feature = "otlp")]
    pub fn with_otlp_if_configured(
        self,
        vars: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, TelemetryError> {
        const ALL: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
        let mut this = self;
        if any_set(&vars, &[ALL, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"]) {
            this = this.with_otlp()?;
        }
        if any_set(&vars, &[ALL, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]) {
            this = this.with_otlp_traces(&vars)?;
        }
        if any_set(&vars, &[ALL, "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"]) {
            this = this.with_otlp_logs(&vars)?;
        }
        Ok(this)
    }

    /// Adds any push exporter behind a periodic reader (tests use the SDK's in-memory exporter;
    /// [`Telemetry::force_flush`] exports at once).
    #[must_use]
    pub fn with_periodic_exporter<E: opentelemetry_sdk::metrics::exporter::PushMetricExporter>(
        mut self,
        exporter: E,
    ) -> Self {
        self.inner = self.inner.with_periodic_exporter(exporter);
        self
    }

    /// Builds it.
    #[must_use]
    pub fn build(self) -> Telemetry {
        let provider = self.inner.build();
        #[cfg(feature = "otlp")]
        {
            let gates: Vec<(&'static str, std::sync::Arc<crate::export::QueueGate>)> = self
                .traces
                .iter()
                .map(|(_, g)| ("spans", g.clone()))
                .chain(self.logs.iter().map(|(_, g)| ("logs", g.clone())))
                .collect();
            if !gates.is_empty() {
                let _dropped = provider
                    .meter(METER_NAME)
                    .u64_observable_counter(super::names::TELEMETRY_DROPPED)
                    .with_unit("{item}")
                    .with_description(
                        "Spans and log records lost: export queue full, or export failed",
                    )
                    .with_callback(move |observer| {
                        for (signal, gate) in &gates {
                            for (reason, n) in [
                                ("queue_full", gate.dropped()),
                                ("export_failed", gate.failed()),
                            ] {
                                observer.observe(
                                    n,
                                    &[
                                        KeyValue::new("signal", *signal),
                                        KeyValue::new("reason", reason),
                                    ],
                                );
                            }
                        }
                    })
                    .build();
            }
        }
        Telemetry {
            provider,
            #[cfg(feature = "otlp")]
            traces: self.traces,
            #[cfg(feature = "otlp")]
            logs: self.logs,
            #[cfg(feature = "otlp")]
            head_sampler: self.head_sampler,
            #[cfg(feature = "prometheus")]
            registry: self.registry,
        }
    }
}

/// The meter provider and its exporters (and, with the `otlp` feature, the tracer and logger
/// providers).
#[derive(Debug, Clone)]
pub struct Telemetry {
    provider: SdkMeterProvider,
    #[cfg(feature = "otlp")]
    traces: Option<(
        opentelemetry_sdk::trace::SdkTracerProvider,
        std::sync::Arc<crate::export::QueueGate>,
    )>,
    #[cfg(feature = "otlp")]
    logs: Option<(
        opentelemetry_sdk::logs::SdkLoggerProvider,
        std::sync::Arc<crate::export::QueueGate>,
    )>,
    #[cfg(feature = "otlp")]
    head_sampler: Option<crate::export::HeadSampler>,
    #[cfg(feature = "prometheus")]
    registry: Option<prometheus::Registry>,
}

impl Telemetry {
    /// A builder for `service_name` in `environment` (`deployment.environment.name`).
    #[must_use]
    pub fn builder(service_name: &str, environment: &str) -> TelemetryBuilder {
        let resource = Resource::builder()
            .with_service_name(service_name.to_owned())
            .with_attribute(KeyValue::new(
                "deployment.environment.name",
                environment.to_owned(),
            ))
            .build();
        TelemetryBuilder {
            inner: SdkMeterProvider::builder().with_resource(resource.clone()),
            #[cfg(feature = "otlp")]
            resource,
            #[cfg(feature = "otlp")]
            traces: None,
            #[cfg(feature = "otlp")]
            logs: None,
            #[cfg(feature = "otlp")]
            head_sampler: None,
            #[cfg(feature = "prometheus")]
            registry: None,
        }
    }

    /// The sealcache meter.
    #[must_use]
    pub fn meter(&self) -> Meter {
        self.provider.meter(METER_NAME)
    }

    /// An observer recording on this provider (and emitting security log records when log export
    /// is on).
    #[must_use]
    pub fn observer(&self) -> OtelObserver {
        #[allow(unused_mut)]
        let mut observer = OtelObserver::new(&self.meter());
        #[cfg(feature = "otlp")]
        {
            use opentelemetry::logs::LoggerProvider as _;
            observer.security_logs =
                self.logs
                    .as_ref()
                    .map(|(provider, _)| crate::export::SecurityLogger {
                        logger: provider.logger(METER_NAME),
                    });
        }
        observer
    }

    /// The provider (for other instruments).
    #[must_use]
    pub fn provider(&self) -> &SdkMeterProvider {
        &self.provider
    }

    /// True when traces are exported (an OTLP traces endpoint was configured).
    #[cfg(feature = "otlp")]
    #[must_use]
    pub fn traces_enabled(&self) -> bool {
        self.traces.is_some()
    }

    /// The head-sampling decision for requests when traces are exported (`None` otherwise): the
    /// creator of a trace's root span asks it before creating any span.
    #[cfg(feature = "otlp")]
    #[must_use]
    pub fn head_sampler(&self) -> Option<crate::export::HeadSampler> {
        self.head_sampler
    }

    /// Spans and log records lost since start (export queue full, or export failed).
    #[cfg(feature = "otlp")]
    #[must_use]
    pub fn dropped(&self) -> (u64, u64) {
        let lost = |g: &crate::export::QueueGate| g.dropped() + g.failed();
        (
            self.traces.as_ref().map_or(0, |(_, g)| lost(g)),
            self.logs.as_ref().map_or(0, |(_, g)| lost(g)),
        )
    }

    /// The `tracing` layer that exports spans (the server's request spans and the cache's and
    /// Redis commands' child spans), or `None` when traces are not exported. Install it before
    /// any span is created, and not inside a `reload` layer (it would lose the parent context).
    #[cfg(feature = "otlp")]
    #[must_use]
    pub fn tracing_layer<S>(
        &self,
    ) -> Option<tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        self.traces
            .as_ref()
            .map(|(provider, _)| tracing_layer(provider))
    }

    /// The Prometheus text exposition of every instrument, or `None` without a registry.
    ///
    /// # Errors
    /// [`TelemetryError::Prometheus`] if encoding fails.
    #[cfg(feature = "prometheus")]
    pub fn render_prometheus(&self) -> Result<Option<String>, TelemetryError> {
        let Some(registry) = &self.registry else {
            return Ok(None);
        };
        prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .map(Some)
            .map_err(|e| TelemetryError::Prometheus(e.to_string()))
    }

    /// Exports everything pending now (metrics, spans, log records).
    ///
    /// # Errors
    /// [`TelemetryError::Sdk`].
    pub fn force_flush(&self) -> Result<(), TelemetryError> {
        #[cfg(feature = "otlp")]
        {
            if let Some((p, _)) = &self.traces {
                p.force_flush()
                    .map_err(|e| TelemetryError::Sdk(e.to_string()))?;
            }
            if let Some((p, _)) = &self.logs {
                p.force_flush()
                    .map_err(|e| TelemetryError::Sdk(e.to_string()))?;
            }
        }
        self.provider
            .force_flush()
            .map_err(|e| TelemetryError::Sdk(e.to_string()))
    }

    /// Flushes and stops the exporters.
    ///
    /// # Errors
    /// [`TelemetryError::Sdk`].
    pub fn shutdown(&self) -> Result<(), TelemetryError> {
        #[cfg(feature = "otlp")]
        {
            if let Some((p, _)) = &self.traces {
                let _ = p.shutdown();
            }
            if let Some((p, _)) = &self.logs {
                let _ = p.shutdown();
            }
        }
        self.provider
            .shutdown()
            .map_err(|e| TelemetryError::Sdk(e.to_string()))
    }
}

/// A `tracing` layer that turns spans into OpenTelemetry spans on `provider`.
#[cfg(feature = "tracing-layer")]
#[must_use]
pub fn tracing_layer<S>(
    provider: &opentelemetry_sdk::trace::SdkTracerProvider,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use opentelemetry::trace::TracerProvider as _;
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(METER_NAME))
        // Only what the semantic conventions ask for: no thread, code location or busy/idle
        // attributes, and a security event logged at error level does not mark the request
        // span failed (its status follows the response).
        // No OpenTelemetry context made current on every enter (every poll of an instrumented
        // future): parents come from the tracing span tree, and the one reader of a span's
        // context (a security log record's trace) asks the span for it.
        .with_context_activation(false)
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_target(false)
        .with_error_events_to_status(false)
        .with_error_events_to_exceptions(false)
}
