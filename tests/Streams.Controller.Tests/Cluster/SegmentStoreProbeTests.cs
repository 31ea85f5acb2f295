using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.Controller.Cluster;
using Streams.Coordination.Cluster;

namespace Streams.Controller.Tests.Cluster;

/// <summary>
/// The probe on real loopback sockets: a store whose ports close is dead within moments; one that drops the probe's
/// connection but still listens, or one that never answers, is not.
/// </summary>
public sealed class SegmentStoreProbeTests
{
    private static readonly ProbeOptions Fast = new() { ConnectTimeout = TimeSpan.FromMilliseconds(300), ConfirmInterval = TimeSpan.FromMilliseconds(50) };

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_store_whose_ports_close_is_dead_within_a_second()
    {
        using var store = new FakeStore();
        await using var probe = new SegmentStoreProbe(Fast, NullLogger.Instance);
        var changed = probe.Changed;
        probe.Track([store.Registration("a")]);
        await store.WaitForProbeConnectionAsync(Token);
        Assert.False(probe.IsDead("a"));

        store.Die();
        await changed.WaitAsync(TimeSpan.FromSeconds(5), Token);
        Assert.True(probe.IsDead("a"));
    }

    [Fact]
    public async Task A_store_that_drops_the_connection_but_still_listens_is_alive()
    {
        using var store = new FakeStore();
        await using var probe = new SegmentStoreProbe(Fast, NullLogger.Instance);
        probe.Track([store.Registration("a")]);
        for (var i = 0; i < 3; i++)
        {
            (await store.WaitForProbeConnectionAsync(Token)).Dispose();
        }

        await store.WaitForProbeConnectionAsync(Token);
        Assert.False(probe.IsDead("a"));
        Assert.False(probe.Changed.IsCompleted);
    }

    [Fact]
    public async Task A_store_that_does_not_answer_is_not_dead()
    {
        // A listener with a full backlog that is never accepted from: connections time out, which proves nothing.
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        silent.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        silent.Listen(0);
        var port = ((IPEndPoint)silent.LocalEndPoint!).Port;
        var fillers = new List<Socket>();
        for (var i = 0; i < 4; i++)
        {
            var filler = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            _ = filler.ConnectAsync(IPAddress.Loopback, port, Token).AsTask().ContinueWith(_ => { }, TaskScheduler.Default);
            fillers.Add(filler);
        }

        await using var probe = new SegmentStoreProbe(Fast, NullLogger.Instance);
        probe.Track([new SegmentStoreRegistration("a", "127.0.0.1", port, $"http://127.0.0.1:{port}", "1")]);
        await Task.Delay(TimeSpan.FromSeconds(2), Token);
        Assert.False(probe.IsDead("a"));
        fillers.ForEach(f => f.Dispose());
    }

    [Fact]
    public async Task A_new_registration_of_a_dead_store_counts_as_alive_and_one_gone_is_forgotten()
    {
        using var store = new FakeStore();
        await using var probe = new SegmentStoreProbe(Fast, NullLogger.Instance);
        var changed = probe.Changed;
        var first = store.Registration("a");
        probe.Track([first]);
        await store.WaitForProbeConnectionAsync(Token);
        store.Die();
        await changed.WaitAsync(TimeSpan.FromSeconds(5), Token);
        Assert.True(probe.IsDead("a"));

        probe.Track([first]);
        Assert.True(probe.IsDead("a"));
        probe.Track([first with { Incarnation = "restarted" }]);
        Assert.False(probe.IsDead("a"));
        probe.Track([]);
        Assert.False(probe.IsDead("a"));
    }

    /// <summary>Two listening ports, as a segment store has (data and gRPC), that accept and hold connections until it dies.</summary>
    private sealed class FakeStore : IDisposable
    {
        private readonly TcpListener _data = new(IPAddress.Loopback, 0);
        private readonly TcpListener _grpc = new(IPAddress.Loopback, 0);
        private readonly List<Socket> _accepted = [];

        public FakeStore()
        {
            _data.Start();
            _grpc.Start();
        }

        public SegmentStoreRegistration Registration(string id) =>
            new(id, "127.0.0.1", ((IPEndPoint)_data.LocalEndpoint).Port, $"http://127.0.0.1:{((IPEndPoint)_grpc.LocalEndpoint).Port}", Guid.NewGuid().ToString("N"));

        public async Task<Socket> WaitForProbeConnectionAsync(CancellationToken cancellationToken)
        {
            var socket = await _data.AcceptSocketAsync(cancellationToken).AsTask().WaitAsync(TimeSpan.FromSeconds(5), cancellationToken);
            _accepted.Add(socket);
            return socket;
        }

        /// <summary>What the kernel does for a killed process: its listeners and connections close.</summary>
        public void Die()
        {
            _data.Stop();
            _grpc.Stop();
            _accepted.ForEach(s => s.Dispose());
        }

        public void Dispose() => Die();
    }
}
