using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Exporter;
using Streams.Common.Server.Metrics;
using Streams.Testing;

namespace Streams.Common.Server.Tests.Metrics;

public sealed class OtlpMetricsTests
{
    [Fact]
    public async Task Metrics_are_pushed_to_an_otlp_http_receiver()
    {
        var port = Ports.Free();
        var received = new TaskCompletionSource<(string Path, string ContentType, byte[] Body)>(TaskCreationOptions.RunContinuationsAsynchronously);
        const string Name = "streams.otlp_test.count";
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.ListenLocalhost(port));
        await using var app = builder.Build();
        app.Run(async context =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            if (System.Text.Encoding.UTF8.GetString(body.ToArray()).Contains(Name, StringComparison.Ordinal))
            {
                received.TrySetResult((context.Request.Path.Value!, context.Request.ContentType ?? string.Empty, body.ToArray()));
            }
        });
        await app.StartAsync(TestContext.Current.CancellationToken);

        using var meter = new Meter("Streams.OtlpTest");
        var counter = meter.CreateCounter<long>(Name);
        using (OtlpMetrics.Start(new Uri($"http://127.0.0.1:{port}"), OtlpExportProtocol.HttpProtobuf, TimeSpan.FromMilliseconds(200), "Streams.OtlpTest"))
        {
            counter.Add(42);
            var (path, contentType, _) = await received.Task.WaitAsync(TimeSpan.FromSeconds(20), TestContext.Current.CancellationToken);
            Assert.Equal("/v1/metrics", path);
            Assert.Equal("application/x-protobuf", contentType);
        }

        await app.StopAsync(TestContext.Current.CancellationToken);
    }
}
