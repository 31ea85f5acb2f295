using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Streams.Testing;

namespace Streams.Client.Tests.Fakes;

/// <summary>A <see cref="FakeController"/>, a <see cref="FakeReaderGroups"/> and a <see cref="FakeSegmentStore"/> served together on a loopback port.</summary>
public sealed class FakeCluster : IAsyncDisposable
{
    private readonly WebApplication _app;

    private FakeCluster(WebApplication app, FakeController controller, FakeSegmentStore store, FakeReaderGroups groups)
    {
        _app = app;
        Controller = controller;
        Store = store;
        Groups = groups;
    }

    public FakeController Controller { get; }

    /// <summary>The ReaderGroups service, on the controller's endpoint as the real controller serves it.</summary>
    public FakeReaderGroups Groups { get; }

    public FakeSegmentStore Store { get; }

    public static async Task<FakeCluster> StartAsync()
    {
        var port = Ports.Free();
        var controller = new FakeController { Uri = $"http://127.0.0.1:{port}" };
        var store = new FakeSegmentStore();
        var groups = new FakeReaderGroups();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        // As the real servers: a block of one 8 MiB event fits in a message.
        builder.Services.AddGrpc(o => o.MaxReceiveMessageSize = Streams.Common.Grpc.GrpcChannels.MaxMessageSize);
        builder.Services.AddSingleton(controller);
        builder.Services.AddSingleton(store);
        builder.Services.AddSingleton(groups);
        builder.WebHost.ConfigureKestrel(k => k.ListenLocalhost(port, l => l.Protocols = HttpProtocols.Http2));
        var app = builder.Build();
        app.MapGrpcService<FakeController>();
        app.MapGrpcService<FakeSegmentStore>();
        app.MapGrpcService<FakeReaderGroups>();
        await app.StartAsync();
        return new FakeCluster(app, controller, store, groups);
    }

    /// <summary>Adds a segment to the controller's layout and to the store.</summary>
    public FakeSegment AddSegment(int epoch, int number, double start, double end, params (int Epoch, int Number)[] predecessors)
    {
        var range = Controller.AddSegment(epoch, number, start, end, predecessors);
        return Store.Add(range.Segment);
    }

    /// <summary>A client on the gRPC carrier that gives up on the store after <paramref name="reconnectTimeout"/>.</summary>
    public StreamsClient CreateClient(TimeSpan? reconnectTimeout = null) => StreamsClient.Create(new StreamsClientOptions
    {
        ControllerUri = Controller.Uri,
        Transport = DataTransport.Grpc,
        ControlTimeout = TimeSpan.FromSeconds(10),
        ReconnectTimeout = reconnectTimeout ?? TimeSpan.FromSeconds(20),
    });

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
