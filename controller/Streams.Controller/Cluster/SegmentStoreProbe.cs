using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Streams.Coordination.Cluster;

namespace Streams.Controller.Cluster;

/// <summary>
/// Tells the leading controller within moments that a segment store's process is gone, rather than once its ZooKeeper
/// session expires (seconds later). It holds one idle TCP connection to each registered store's data port; when that
/// connection closes, it connects to the store's data and gRPC ports, <see cref="ProbeOptions.Confirmations"/> times
/// <see cref="ProbeOptions.ConfirmInterval"/> apart, and only when every attempt is refused (nothing listens there:
/// the process is dead, its ports closed by the kernel) does it call the store dead.
/// <para>
/// What it never does: call a store dead because it does not answer. A frozen (SIGSTOP), cut-off or overloaded store
/// still holds its listening sockets or drops packets; connections that time out prove nothing, and the session
/// timeout decides. A store called dead stays dead for as long as the same registration stands (it carries the
/// process's incarnation), so a process restarted on the same address counts again once it has registered anew.
/// </para>
/// <para>
/// Being wrong would cost a live store its containers but never data: each new owner fences the container's log
/// before it serves, so the old owner can write nothing after the takeover.
/// </para>
/// </summary>
public sealed class SegmentStoreProbe : IAsyncDisposable
{
    private readonly ProbeOptions _options;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Watch> _watched = new(StringComparer.Ordinal);
    private readonly HashSet<string> _dead = new(StringComparer.Ordinal);
    private TaskCompletionSource _changed = NewSignal();

    public SegmentStoreProbe(ProbeOptions options, ILogger logger)
    {
        _options = options;
        _logger = logger;
    }

    /// <summary>Completes the next time a store is called dead.</summary>
    public Task Changed => Volatile.Read(ref _changed).Task;

    /// <summary>Whether the store's process was found gone while it is still registered.</summary>
    public bool IsDead(string id)
    {
        lock (_lock)
        {
            return _dead.Contains(id);
        }
    }

    /// <summary>Watches exactly these registered stores: starts on new ones (or changed registrations), forgets those gone.</summary>
    public void Track(IReadOnlyCollection<SegmentStoreRegistration> registered)
    {
        var stopped = new List<Watch>();
        lock (_lock)
        {
            TrackLocked(registered, stopped);
        }

        // Outside the lock: cancellation runs the watches' continuations, which take it.
        stopped.ForEach(w => w.End());
    }

    private void TrackLocked(IReadOnlyCollection<SegmentStoreRegistration> registered, List<Watch> stopped)
    {
        foreach (var registration in registered)
        {
            if (_watched.TryGetValue(registration.Id, out var existing) && existing.Registration == registration)
            {
                continue;
            }

            // A new registration is a new process: whatever was found about the old one no longer holds.
            if (existing is not null)
            {
                stopped.Add(existing);
            }

            _dead.Remove(registration.Id);
            var watch = new Watch(registration);
            _watched[registration.Id] = watch;
            watch.Running = Task.Run(() => WatchAsync(watch), CancellationToken.None);
        }

        foreach (var id in _watched.Keys.Where(id => !registered.Any(r => r.Id == id)).ToList())
        {
            _watched.Remove(id, out var gone);
            stopped.Add(gone!);
            _dead.Remove(id);
        }
    }

    public async ValueTask DisposeAsync()
    {
        List<Watch> watches;
        lock (_lock)
        {
            watches = _watched.Values.ToList();
            _watched.Clear();
        }

        foreach (var watch in watches)
        {
            await watch.Stop.CancelAsync();
        }

        await Task.WhenAll(watches.Select(w => w.Running));
        foreach (var watch in watches)
        {
            watch.Stop.Dispose();
        }
    }

    private async Task WatchAsync(Watch watch)
    {
        var registration = watch.Registration;
        var cancellationToken = watch.Stop.Token;
        var grpc = new Uri(registration.GrpcUri);
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var (socket, refused) = await ConnectAsync(registration.Host, registration.DataPort, cancellationToken);
                if (socket is not null)
                {
                    using (socket)
                    {
                        await WaitForCloseAsync(socket, cancellationToken);
                    }
                }
                else if (!refused)
                {
                    // Unreachable or slow: proves nothing. Try again in a moment.
                    await Task.Delay(_options.ConfirmInterval, cancellationToken);
                    continue;
                }

                if (await ConfirmGoneAsync(registration.Host, registration.DataPort, grpc, cancellationToken))
                {
                    lock (_lock)
                    {
                        // A watch replaced meanwhile (a new registration, or none) found out about an old process.
                        if (!_watched.TryGetValue(registration.Id, out var current) || current != watch)
                        {
                            return;
                        }

                        _dead.Add(registration.Id);
                    }

                    _logger.LogWarning(
                        "Segment store {Store} is gone: its data port {Host}:{DataPort} and gRPC port {Grpc} refuse connections. Its containers move now, before its session expires.",
                        registration.Id, registration.Host, registration.DataPort, grpc.Authority);
                    Interlocked.Exchange(ref _changed, NewSignal()).TrySetResult();
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>True when every attempt on both ports was refused; any accepted or unanswered attempt means "not proven".</summary>
    private async Task<bool> ConfirmGoneAsync(string host, int dataPort, Uri grpc, CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < _options.Confirmations; attempt++)
        {
            if (attempt > 0)
            {
                await Task.Delay(_options.ConfirmInterval, cancellationToken);
            }

            foreach (var (h, port) in new[] { (host, dataPort), (grpc.Host, grpc.Port) })
            {
                var (socket, refused) = await ConnectAsync(h, port, cancellationToken);
                socket?.Dispose();
                if (!refused)
                {
                    return false;
                }
            }
        }

        return true;
    }

    /// <summary>A connected socket, or null and whether the connection was actively refused (rather than timed out or failed otherwise).</summary>
    private async Task<(Socket? Socket, bool Refused)> ConnectAsync(string host, int port, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.ConnectTimeout);
        try
        {
            await socket.ConnectAsync(host, port, timeout.Token);
            return (socket, false);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            return (null, e.SocketErrorCode == SocketError.ConnectionRefused);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            return (null, false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Returns when the peer closes or resets the connection; the store never writes on a connection that sent no request.</summary>
    private static async Task WaitForCloseAsync(Socket socket, CancellationToken cancellationToken)
    {
        var buffer = new byte[64];
        try
        {
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken) > 0)
            {
            }
        }
        catch (SocketException)
        {
            // Reset: the same as closed.
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private sealed class Watch(SegmentStoreRegistration registration)
    {
        public SegmentStoreRegistration Registration { get; } = registration;

        public CancellationTokenSource Stop { get; } = new();

        public Task Running { get; set; } = Task.CompletedTask;

        /// <summary>Stops the watch; its token source is disposed once the watch has seen it.</summary>
        public void End()
        {
            Stop.Cancel();
            Running.ContinueWith(static (_, stop) => ((CancellationTokenSource)stop!).Dispose(), Stop, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        }
    }
}

/// <summary>How the leading controller probes segment store processes (see <see cref="SegmentStoreProbe"/>).</summary>
public sealed record ProbeOptions
{
    /// <summary>Longest wait for one connection attempt, 1 s: an attempt that takes longer proves nothing either way.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// 200 ms between confirmations: long enough that a store whose listener briefly hiccupped answers the second
    /// attempt, short enough that a dead store's containers move within about half a second.
    /// </summary>
    public TimeSpan ConfirmInterval { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Rounds of refused connections to both ports before a store is dead, 2.</summary>
    public int Confirmations { get; init; } = 2;
}
