using System.Net;
using System.Text;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Contracts.Controller;
using Streams.Coordination.Cluster;
using Streams.Coordination.Metadata;

namespace Streams.Hosting.Tests;

/// <summary>A cluster segment store's load sink (ControllerLoadSink.cs): finding the leading controller and following it.</summary>
public sealed class ControllerLoadSinkTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "load-sink-" + Guid.NewGuid().ToString("N"));

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Reports_go_to_the_leader_and_a_refusal_makes_the_sink_read_the_leader_again()
    {
        await using var former = await FakeController.StartAsync(accept: false);
        await using var leader = await FakeController.StartAsync(accept: true);
        var store = FileMetadataStore.Open(_directory);
        using var sink = new ControllerLoadSink(store, NullLogger.Instance);
        var report = new LoadReport { SegmentStore = "127.0.0.1:1" };
        report.Segments.Add(new SegmentLoad { Segment = "s/t/0.#epoch.0", AgeMs = 5 });

        Assert.False(await sink.ReportAsync(report, Token)); // no leader yet

        await Elect(store, former.Address);
        Assert.False(await sink.ReportAsync(report, Token));
        Assert.Equal(1, former.Calls);

        await Elect(store, leader.Address);
        Assert.True(await sink.ReportAsync(report, Token));
        Assert.True(await sink.ReportAsync(report, Token));
        Assert.Equal((1, 2), (former.Calls, leader.Calls));
        Assert.Equal("s/t/0.#epoch.0", leader.Last!.Segments.Single().Segment);
    }

    [Theory]
    [InlineData("http://10.0.0.1:9090\n0123abcd", "http://10.0.0.1:9090")]
    [InlineData("https://controller:9090", "https://controller:9090")]
    [InlineData("not an address\nid", null)]
    public void The_leaders_address_is_the_first_line_of_its_election_node(string node, string? address) =>
        Assert.Equal(address, ControllerLoadSink.AddressOf(Encoding.UTF8.GetBytes(node)));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    /// <summary>What LeaderElection writes for a leading candidate.</summary>
    private static async Task Elect(IMetadataStore store, string address)
    {
        await store.TryDeleteAsync(ClusterPaths.ControllerLeader, -1, Token);
        Assert.True(await store.TryCreateEphemeralAsync(ClusterPaths.ControllerLeader, Encoding.UTF8.GetBytes($"{address}\n{Guid.NewGuid():N}"), Token));
    }

    /// <summary>A gRPC server answering only ReportLoad, as a leading (or former) controller would.</summary>
    private sealed class FakeController : Contracts.Controller.Controller.ControllerBase, IAsyncDisposable
    {
        private WebApplication? _app;
        private int _calls;

        private FakeController(bool accept) => Accept = accept;

        public bool Accept { get; }

        public int Calls => Volatile.Read(ref _calls);

        public LoadReport? Last { get; private set; }

        public string Address { get; private set; } = "";

        public static async Task<FakeController> StartAsync(bool accept)
        {
            var controller = new FakeController(accept);
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
            builder.Services.AddGrpc();
            builder.Services.AddSingleton(controller);
            var app = builder.Build();
            app.MapGrpcService<FakeController>();
            await app.StartAsync(Token);
            controller._app = app;
            controller.Address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
            return controller;
        }

        public override Task<LoadReportReply> ReportLoad(LoadReport request, ServerCallContext context)
        {
            Interlocked.Increment(ref _calls);
            Last = request;
            return Task.FromResult(new LoadReportReply { Accepted = Accept });
        }

        public async ValueTask DisposeAsync()
        {
            if (_app is { } app)
            {
                await app.StopAsync(Token);
                await app.DisposeAsync();
            }
        }
    }
}
