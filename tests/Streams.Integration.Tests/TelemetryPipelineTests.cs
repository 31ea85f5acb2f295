using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Streams.Hosting;
using Streams.Testing;

namespace Streams.Integration.Tests;

/// <summary>The servers' OpenTelemetry pipeline pushing metrics and spans to an OTLP/HTTP receiver, and its settings.</summary>
public sealed class TelemetryPipelineTests
{
    private static IConfiguration Configuration(params (string Key, string Value)[] settings) =>
        new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value))).Build();

    [Fact]
    public async Task Metrics_and_spans_are_pushed_to_an_otlp_http_receiver()
    {
        var port = Ports.Free();
        var received = new ConcurrentQueue<(string Path, string ContentType, string Body)>();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.ListenLocalhost(port));
        await using var app = builder.Build();
        app.Run(async context =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            received.Enqueue((context.Request.Path.Value!, context.Request.ContentType ?? string.Empty, Encoding.UTF8.GetString(body.ToArray())));
        });
        await app.StartAsync();

        var name = "otlp_test_" + Guid.NewGuid().ToString("N")[..8];
        using var meter = new Meter("Streams.OtlpTest");
        using var source = new ActivitySource("Streams.OtlpTest");
        using (TelemetryPipeline.Build(Configuration(("Telemetry:OtlpEndpoint", $"http://127.0.0.1:{port}")), "streams-test"))
        {
            meter.CreateCounter<long>("streams.test." + name).Add(42);
            source.StartActivity(name)?.Dispose();
        } // disposing flushes both

        Assert.Contains(received, r => r.Path == "/v1/metrics" && r.ContentType == "application/x-protobuf" && r.Body.Contains(name, StringComparison.Ordinal));
        Assert.Contains(received, r => r.Path == "/v1/traces" && r.ContentType == "application/x-protobuf" && r.Body.Contains(name, StringComparison.Ordinal));
        await app.StopAsync();
    }

    [Theory]
    [InlineData("Telemetry:OtlpEndpoint", "collector:4318")]
    [InlineData("Telemetry:OtlpProtocol", "thrift")]
    [InlineData("Telemetry:TraceSampleRatio", "2")]
    public void A_wrong_setting_is_refused_by_name(string key, string value)
    {
        var settings = key == "Telemetry:OtlpEndpoint" ? [(key, value)] : new[] { ("Telemetry:OtlpEndpoint", "http://127.0.0.1:4318"), (key, value) };
        var error = Assert.Throws<ArgumentException>(() => TelemetryPipeline.Build(Configuration(settings), "streams-test").Dispose());
        Assert.Contains(key, error.Message, StringComparison.Ordinal);
    }
}
