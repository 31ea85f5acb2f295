using Microsoft.Extensions.Logging;
using Streams.ZooKeeper.Protocol;

namespace Streams.ZooKeeper;

public sealed partial class ZooKeeperClient
{
    /// <summary>
    /// Keeps a connection up for the session's life: connect, serve, and on loss reconnect (any server). A client that
    /// has heard nothing from any server for the whole session timeout treats its session as expired without waiting
    /// to be told: the servers have expired it (or are about to), so its ephemeral nodes are gone and whoever relied on
    /// them (a container's owner) must stop now, not when the partition heals.
    /// </summary>
    private async Task RunAsync()
    {
        var delay = TimeSpan.FromMilliseconds(50);
        while (!_closing.IsCancellationRequested && _state != ZooKeeperState.Expired)
        {
            var silent = Environment.TickCount64 - Interlocked.Read(ref _lastContact);
            if (Interlocked.Read(ref _sessionId) != 0 && silent >= _timeoutMs)
            {
                _logger.LogWarning("No ZooKeeper server answered for {Silent} ms, the session timeout: session 0x{Session:x} is expired.", silent, Interlocked.Read(ref _sessionId));
                OnExpired();
                return;
            }

            var (host, port) = _servers[_nextServer++ % _servers.Length];
            ZooKeeperConnection connection;
            try
            {
                var connectTimeout = Interlocked.Read(ref _sessionId) == 0
                    ? _options.ConnectTimeout
                    : TimeSpan.FromMilliseconds(Math.Clamp(_timeoutMs - silent, 50, _options.ConnectTimeout.TotalMilliseconds));
                (connection, var granted, var sessionId, var password) = await ZooKeeperConnection.ConnectAsync(
                    host, port, Interlocked.Read(ref _lastZxid), _timeoutMs, Interlocked.Read(ref _sessionId), _password,
                    connectTimeout, _closing.Token);
                if (granted <= 0)
                {
                    await connection.DisposeAsync();
                    _logger.LogWarning("ZooKeeper session 0x{Session:x} expired.", Interlocked.Read(ref _sessionId));
                    OnExpired();
                    return;
                }

                _timeoutMs = granted;
                Interlocked.Exchange(ref _sessionId, sessionId);
                _password = password;
                Interlocked.Exchange(ref _lastContact, Environment.TickCount64);
            }
            catch (OperationCanceledException) when (_closing.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or OperationCanceledException or InvalidDataException)
            {
                _logger.LogDebug("Could not connect to ZooKeeper at {Host}:{Port}: {Error}", host, port, e.Message);
                await Task.Delay(delay, CancellationToken.None);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(1).Ticks));
                continue;
            }

            delay = TimeSpan.FromMilliseconds(50);
            connection.Start(OnOutOfBand, zxid => InterlockedMax(ref _lastZxid, zxid));
            if (!await RestoreWatchesAsync(connection))
            {
                await connection.DisposeAsync();
                continue;
            }

            lock (_lock)
            {
                _connection = connection;
                _state = ZooKeeperState.Connected;
                _connectedSignal.TrySetResult();
            }

            _logger.LogDebug("Connected to ZooKeeper {Host}:{Port}, session 0x{Session:x}, timeout {Timeout} ms.", host, port, Interlocked.Read(ref _sessionId), _timeoutMs);
            Raise(ZooKeeperState.Connected);

            await PingUntilClosedAsync(connection);
            Interlocked.Exchange(ref _lastContact, Environment.TickCount64 - connection.MillisSinceReceive);

            lock (_lock)
            {
                _connection = null;
                if (_state == ZooKeeperState.Connected)
                {
                    _state = ZooKeeperState.Disconnected;
                    _connectedSignal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                }
            }

            await connection.DisposeAsync();
            if (_state == ZooKeeperState.Disconnected)
            {
                _logger.LogInformation("Lost the connection to ZooKeeper {Host}:{Port}; reconnecting.", host, port);
                Raise(ZooKeeperState.Disconnected);
            }
        }
    }

    /// <summary>Pings when idle (a third of the session timeout) and drops a connection that has gone silent.</summary>
    private async Task PingUntilClosedAsync(ZooKeeperConnection connection)
    {
        var interval = TimeSpan.FromMilliseconds(Math.Max(_timeoutMs / 3, 100));
        var silence = Math.Max(_timeoutMs * 2 / 3, 200);
        while (!connection.Closed.IsCompleted)
        {
            await Task.WhenAny(connection.Closed, Task.Delay(interval / 2, CancellationToken.None));
            if (connection.Closed.IsCompleted || _closing.IsCancellationRequested)
            {
                return;
            }

            if (connection.MillisSinceReceive > silence)
            {
                connection.Close(new TimeoutException($"ZooKeeper was silent for {connection.MillisSinceReceive} ms."));
                return;
            }

            if (connection.MillisSinceSend >= interval.TotalMilliseconds)
            {
                try
                {
                    await connection.SendAsync(OpCode.PingXid, OpCode.Ping, null, null, CancellationToken.None);
                }
                catch (ZooKeeperException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>After a reconnect, tells the server which watches this session holds (SetWatches), from the last zxid seen.</summary>
    private async Task<bool> RestoreWatchesAsync(ZooKeeperConnection connection)
    {
        List<string> data, exist, child;
        lock (_lock)
        {
            data = [.. _dataWatches.Keys.Select(Full)];
            exist = [.. _existWatches.Keys.Select(Full)];
            child = [.. _childWatches.Keys.Select(Full)];
        }

        if (data.Count + exist.Count + child.Count == 0)
        {
            return true;
        }

        try
        {
            await connection.SendAsync(OpCode.SetWatchesXid, OpCode.SetWatches, w =>
            {
                w.WriteLong(Interlocked.Read(ref _lastZxid));
                w.WriteStrings(data);
                w.WriteStrings(exist);
                w.WriteStrings(child);
            }, null, CancellationToken.None);
            return true;
        }
        catch (ZooKeeperException)
        {
            return false;
        }
    }

    private void OnOutOfBand(ZooKeeperReply reply)
    {
        if (reply.Xid != OpCode.NotificationXid)
        {
            return;
        }

        var reader = new JuteReader(reply.Body);
        var type = (WatchEventType)reader.ReadInt();
        reader.ReadInt(); // keeper state
        var path = Relative(reader.ReadString() ?? "/");
        var fired = new List<Action<WatchedEvent>>();
        lock (_lock)
        {
            switch (type)
            {
                case WatchEventType.NodeCreated:
                case WatchEventType.NodeDataChanged:
                    Take(_dataWatches, path, fired);
                    Take(_existWatches, path, fired);
                    break;
                case WatchEventType.NodeDeleted:
                    Take(_dataWatches, path, fired);
                    Take(_existWatches, path, fired);
                    Take(_childWatches, path, fired);
                    break;
                case WatchEventType.NodeChildrenChanged:
                    Take(_childWatches, path, fired);
                    break;
            }
        }

        var watchedEvent = new WatchedEvent(type, ZooKeeperState.Connected, path);
        foreach (var watch in fired)
        {
            _events.Writer.TryWrite(() => watch(watchedEvent));
        }
    }

    private static void Take(Dictionary<string, List<Action<WatchedEvent>>> watches, string path, List<Action<WatchedEvent>> into)
    {
        if (watches.Remove(path, out var list))
        {
            into.AddRange(list);
        }
    }

    private void OnExpired()
    {
        lock (_lock)
        {
            if (_state is ZooKeeperState.Expired or ZooKeeperState.Closed)
            {
                return;
            }

            _state = ZooKeeperState.Expired;
            _dataWatches.Clear();
            _existWatches.Clear();
            _childWatches.Clear();
            _connectedSignal.TrySetException(new ZooKeeperException(ZooKeeperError.SessionExpired));
        }

        _connection?.Close(new ZooKeeperException(ZooKeeperError.SessionExpired));
        _expired.TrySetResult();
        Raise(ZooKeeperState.Expired);
    }

    private void SetState(ZooKeeperState state)
    {
        lock (_lock)
        {
            _state = state;
            _connectedSignal.TrySetException(new ObjectDisposedException(nameof(ZooKeeperClient)));
        }
    }

    private void Raise(ZooKeeperState state)
    {
        if (StateChanged is { } handler)
        {
            _events.Writer.TryWrite(() => handler(state));
        }
    }

    /// <summary>Runs watch callbacks one at a time, off the receive loop; a throwing callback is logged and skipped.</summary>
    private async Task DispatchEventsAsync()
    {
        await foreach (var action in _events.Reader.ReadAllAsync())
        {
            try
            {
                action();
            }
            catch (Exception e)
            {
                _logger.LogError(e, "A ZooKeeper watch callback failed.");
            }
        }
    }

    private static void InterlockedMax(ref long target, long value)
    {
        var current = Interlocked.Read(ref target);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }
}
