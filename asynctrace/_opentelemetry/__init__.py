"""OpenTelemetry: OTLP settings, spans made into the SDK's, encoded and sent over gRPC or HTTP;
the run's trace ids and the program's own OpenTelemetry spans.

Nothing is imported here: each module is imported where it is used.
"""
