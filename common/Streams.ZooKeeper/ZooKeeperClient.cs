using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Streams.ZooKeeper.Protocol;

namespace Streams.ZooKeeper;

/// <summary>
/// A ZooKeeper session. It connects to one server of the connection string, pings while idle, and after a lost
/// connection reconnects (to any server) with the same session, re-registering its watches; requests made meanwhile
/// wait for the connection. If the server declares the session expired, <see cref="Expired"/> completes and every
/// later request fails with <see cref="ZooKeeperError.SessionExpired"/>: the owner must create a new client.
/// Requests in flight when a connection breaks fail with <see cref="ZooKeeperError.ConnectionLoss"/>: their outcome
/// is unknown (a create may have happened), as with every ZooKeeper client.
/// Watches are one-shot, as in ZooKeeper. Thread-safe.
/// </summary>
public sealed partial class ZooKeeperClient : IAsyncDisposable
{
    private readonly ZooKeeperOptions _options;
    private readonly (string Host, int Port)[] _servers;
    private readonly string _chroot;
    private readonly ILogger _logger;
    private readonly object _lock = new();
    private readonly Dictionary<string, List<Action<WatchedEvent>>> _dataWatches = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<Action<WatchedEvent>>> _existWatches = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<Action<WatchedEvent>>> _childWatches = new(StringComparer.Ordinal);
    private readonly System.Threading.Channels.Channel<Action> _events = System.Threading.Channels.Channel.CreateUnbounded<Action>(new() { SingleReader = true });
    private readonly CancellationTokenSource _closing = new();
    private readonly TaskCompletionSource _expired = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _connectedSignal = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ZooKeeperConnection? _connection;
    private long _sessionId;
    private byte[] _password;
    private int _timeoutMs;
    private long _lastContact = Environment.TickCount64; // when a server last answered (Environment.TickCount64)
    private long _lastZxid;
    private int _xid;
    private int _nextServer;
    private volatile ZooKeeperState _state = ZooKeeperState.Disconnected;
    private Task? _run;
    private Task? _dispatch;

    private ZooKeeperClient(ZooKeeperOptions options, ILogger logger)
    {
        _options = options;
        _logger = logger;
        (_servers, _chroot) = ParseConnectionString(options.ConnectionString);
        _sessionId = options.SessionId;
        _password = options.SessionPassword ?? new byte[16];
        _timeoutMs = (int)options.SessionTimeout.TotalMilliseconds;
        _nextServer = Random.Shared.Next(_servers.Length);
    }

    /// <summary>Raised (on the event thread) when the session's state changes.</summary>
    public event Action<ZooKeeperState>? StateChanged;

    /// <summary>The session's current state.</summary>
    public ZooKeeperState State => _state;

    /// <summary>The session id (0 until the first connection).</summary>
    public long SessionId => Interlocked.Read(ref _sessionId);

    /// <summary>The session password, to resume the session from another client.</summary>
    public byte[] SessionPassword => _password;

    /// <summary>The session timeout the server granted.</summary>
    public TimeSpan SessionTimeout => TimeSpan.FromMilliseconds(_timeoutMs);

    /// <summary>Completes when the session expires.</summary>
    public Task Expired => _expired.Task;

    /// <summary>Connects (trying each server) and returns once the session is established.</summary>
    public static async Task<ZooKeeperClient> ConnectAsync(ZooKeeperOptions options, ILogger? logger = null, CancellationToken cancellationToken = default)
    {
        var client = new ZooKeeperClient(options, logger ?? NullLogger.Instance);
        client._dispatch = Task.Run(client.DispatchEventsAsync, CancellationToken.None);
        client._run = Task.Run(client.RunAsync, CancellationToken.None);
        try
        {
            var wait = options.SessionTimeout + (options.ConnectTimeout * client._servers.Length);
            await client.WaitConnectedAsync(cancellationToken).WaitAsync(wait, cancellationToken);
        }
        catch (Exception e)
        {
            await client.DisposeAsync();
            if (e is ZooKeeperException)
            {
                throw;
            }

            throw new ZooKeeperException(ZooKeeperError.ConnectionLoss, null, new TimeoutException($"Could not connect to ZooKeeper at {options.ConnectionString}.", e));
        }

        return client;
    }

    // ---- Operations --------------------------------------------------------------------------------

    /// <summary>Creates a node; returns its path (with the sequence number for sequential modes).</summary>
    public async Task<string> CreateAsync(string path, ReadOnlyMemory<byte> data, CreateMode mode = CreateMode.Persistent, CancellationToken cancellationToken = default)
    {
        var reply = await RequestAsync(OpCode.Create, w => WriteCreate(w, Full(path), data.Span, mode), path, null, cancellationToken);
        return Relative(new JuteReader(reply.Body).ReadString()!);
    }

    /// <summary>Creates a node and any missing parents (persistent); returns false if the node already existed.</summary>
    public async Task<bool> CreateRecursiveAsync(string path, ReadOnlyMemory<byte> data, CreateMode mode = CreateMode.Persistent, CancellationToken cancellationToken = default)
    {
        var parent = ParentOf(path);
        if (parent != "/" && await ExistsAsync(parent, null, cancellationToken) is null)
        {
            try
            {
                await CreateRecursiveAsync(parent, ReadOnlyMemory<byte>.Empty, CreateMode.Persistent, cancellationToken);
            }
            catch (ZooKeeperException e) when (e.Error == ZooKeeperError.NodeExists)
            {
            }
        }

        try
        {
            await CreateAsync(path, data, mode, cancellationToken);
            return true;
        }
        catch (ZooKeeperException e) when (e.Error == ZooKeeperError.NodeExists)
        {
            return false;
        }
    }

    /// <summary>Deletes a node if its version is <paramref name="version"/> (-1: any).</summary>
    public Task DeleteAsync(string path, int version = -1, CancellationToken cancellationToken = default) =>
        RequestAsync(OpCode.Delete, w =>
        {
            w.WriteString(Full(path));
            w.WriteInt(version);
        }, path, null, cancellationToken);

    /// <summary>The node's stat, or null if it does not exist. A watch fires when it is created, changed or deleted.</summary>
    public async Task<ZooKeeperStat?> ExistsAsync(string path, Action<WatchedEvent>? watch = null, CancellationToken cancellationToken = default)
    {
        try
        {
            var reply = await RequestAsync(OpCode.Exists, w =>
            {
                w.WriteString(Full(path));
                w.WriteBool(watch is not null);
            }, path, watch is null ? null : r => AddWatch(r.Error == ZooKeeperError.Ok ? _dataWatches : _existWatches, path, watch), cancellationToken, allowed: ZooKeeperError.NoNode);
            return reply.Error == ZooKeeperError.NoNode ? null : new JuteReader(reply.Body).ReadStat();
        }
        catch (ZooKeeperException e) when (e.Error == ZooKeeperError.NoNode)
        {
            return null;
        }
    }

    /// <summary>The node's data and stat. Throws NoNode if it does not exist. A watch fires on change or deletion.</summary>
    public async Task<(byte[] Data, ZooKeeperStat Stat)> GetDataAsync(string path, Action<WatchedEvent>? watch = null, CancellationToken cancellationToken = default)
    {
        var reply = await RequestAsync(OpCode.GetData, w =>
        {
            w.WriteString(Full(path));
            w.WriteBool(watch is not null);
        }, path, watch is null ? null : r => { if (r.Error == ZooKeeperError.Ok) { AddWatch(_dataWatches, path, watch); } }, cancellationToken);
        var reader = new JuteReader(reply.Body);
        var data = reader.ReadBuffer() ?? [];
        return (data, reader.ReadStat());
    }

    /// <summary>Replaces the node's data if its version is <paramref name="version"/> (-1: any). Throws BadVersion otherwise.</summary>
    public async Task<ZooKeeperStat> SetDataAsync(string path, ReadOnlyMemory<byte> data, int version = -1, CancellationToken cancellationToken = default)
    {
        var reply = await RequestAsync(OpCode.SetData, w =>
        {
            w.WriteString(Full(path));
            w.WriteBuffer(data.Span);
            w.WriteInt(version);
        }, path, null, cancellationToken);
        return new JuteReader(reply.Body).ReadStat();
    }

    /// <summary>The names of the node's children. A watch fires when children are added or removed, or the node deleted.</summary>
    public async Task<IReadOnlyList<string>> GetChildrenAsync(string path, Action<WatchedEvent>? watch = null, CancellationToken cancellationToken = default)
    {
        var reply = await RequestAsync(OpCode.GetChildren, w =>
        {
            w.WriteString(Full(path));
            w.WriteBool(watch is not null);
        }, path, watch is null ? null : r => { if (r.Error == ZooKeeperError.Ok) { AddWatch(_childWatches, path, watch); } }, cancellationToken);
        return new JuteReader(reply.Body).ReadStrings();
    }

    /// <summary>
    /// Applies all operations atomically, or none. Returns one result per operation. If the transaction failed, the
    /// failing operation carries its error, those before it report Ok (they were rolled back) and those after it
    /// <see cref="ZooKeeperError.RuntimeInconsistency"/>: check with <see cref="ZooKeeperOpResults.Succeeded"/>.
    /// </summary>
    public async Task<IReadOnlyList<ZooKeeperOpResult>> MultiAsync(IReadOnlyList<ZooKeeperOp> operations, CancellationToken cancellationToken = default)
    {
        var reply = await RequestAsync(OpCode.Multi, w =>
        {
            foreach (var op in operations)
            {
                switch (op)
                {
                    case ZooKeeperOp.Create create:
                        WriteMultiHeader(w, OpCode.Create);
                        WriteCreate(w, Full(create.Path), create.Data, create.Mode);
                        break;
                    case ZooKeeperOp.Delete delete:
                        WriteMultiHeader(w, OpCode.Delete);
                        w.WriteString(Full(delete.Path));
                        w.WriteInt(delete.Version);
                        break;
                    case ZooKeeperOp.SetData set:
                        WriteMultiHeader(w, OpCode.SetData);
                        w.WriteString(Full(set.Path));
                        w.WriteBuffer(set.Data);
                        w.WriteInt(set.Version);
                        break;
                    case ZooKeeperOp.Check check:
                        WriteMultiHeader(w, OpCode.Check);
                        w.WriteString(Full(check.Path));
                        w.WriteInt(check.Version);
                        break;
                }
            }

            w.WriteInt(-1);
            w.WriteBool(true);
            w.WriteInt(-1);
        }, null, null, cancellationToken, allowed: null, anyError: true);

        var results = new List<ZooKeeperOpResult>(operations.Count);
        if (reply.Body.Length > 0)
        {
            var reader = new JuteReader(reply.Body);
            while (true)
            {
                var type = reader.ReadInt();
                var done = reader.ReadBool();
                var error = (ZooKeeperError)reader.ReadInt();
                if (done)
                {
                    break;
                }

                results.Add(type switch
                {
                    OpCode.Create => new ZooKeeperOpResult(ZooKeeperError.Ok, Relative(reader.ReadString()!)),
                    OpCode.SetData => new ZooKeeperOpResult(ZooKeeperError.Ok, null, reader.ReadStat()),
                    OpCode.Error => new ZooKeeperOpResult((ZooKeeperError)reader.ReadInt()),
                    _ => new ZooKeeperOpResult(error == (ZooKeeperError)(-1) ? ZooKeeperError.Ok : error),
                });
            }
        }

        if (results.Count != operations.Count)
        {
            if (reply.Error != ZooKeeperError.Ok)
            {
                throw new ZooKeeperException(reply.Error);
            }

            throw new ZooKeeperException(ZooKeeperError.MarshallingError, null, new InvalidDataException($"A multi of {operations.Count} operations returned {results.Count} results."));
        }

        return results;
    }

    /// <summary>Ends the session: its ephemeral nodes are deleted at once.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_closing.IsCancellationRequested)
        {
            return;
        }

        if (_state == ZooKeeperState.Connected && _connection is { } connection)
        {
            try
            {
                await connection.SendAsync(NextXid(), OpCode.CloseSession, null, null, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(2));
            }
            catch (Exception e) when (e is ZooKeeperException or TimeoutException or ObjectDisposedException)
            {
                // The server will expire the session on its own.
            }
        }

        await _closing.CancelAsync();
        SetState(ZooKeeperState.Closed);
        _connection?.Close(new ObjectDisposedException(nameof(ZooKeeperClient)));
        if (_run is not null)
        {
            await _run;
        }

        _events.Writer.TryComplete();
        if (_dispatch is not null)
        {
            await _dispatch;
        }

        _closing.Dispose();
    }

    // ---- Plumbing ----------------------------------------------------------------------------------

    private async Task<ZooKeeperReply> RequestAsync(
        int type, Action<JuteWriter> body, string? path, Action<ZooKeeperReply>? onReply, CancellationToken cancellationToken,
        ZooKeeperError? allowed = null, bool anyError = false)
    {
        ZooKeeperReply reply;
        while (true)
        {
            var connection = await WaitConnectedAsync(cancellationToken);
            try
            {
                reply = await connection.SendAsync(NextXid(), type, body, onReply, cancellationToken);
                break;
            }
            catch (ZooKeeperException e) when (e.Error == ZooKeeperError.ConnectionLoss && type is OpCode.Exists or OpCode.GetData or OpCode.GetChildren)
            {
                // A read lost with its connection is safe to repeat on the next one (the session lives on until it
                // expires, which WaitConnectedAsync reports). Writes surface the loss: whether they applied is unknown.
            }
        }

        if (reply.Error == ZooKeeperError.SessionExpired)
        {
            OnExpired();
        }

        if (reply.Error != ZooKeeperError.Ok && reply.Error != allowed && !anyError)
        {
            throw new ZooKeeperException(reply.Error, path);
        }

        return reply;
    }

    private async Task<ZooKeeperConnection> WaitConnectedAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task signal;
            lock (_lock)
            {
                switch (_state)
                {
                    case ZooKeeperState.Connected when _connection is { } live:
                        return live;
                    case ZooKeeperState.Expired:
                        throw new ZooKeeperException(ZooKeeperError.SessionExpired);
                    case ZooKeeperState.Closed:
                        throw new ObjectDisposedException(nameof(ZooKeeperClient));
                }

                signal = _connectedSignal.Task;
            }

            try
            {
                await signal.WaitAsync(TimeSpan.FromMilliseconds(Math.Max(_timeoutMs, 1000)), cancellationToken);
            }
            catch (TimeoutException e)
            {
                throw new ZooKeeperException(ZooKeeperError.ConnectionLoss, null, e);
            }
        }
    }

    private int NextXid() => Interlocked.Increment(ref _xid) & int.MaxValue;

    private string Full(string path)
    {
        if (string.IsNullOrEmpty(path) || path[0] != '/' || (path.Length > 1 && path[^1] == '/'))
        {
            throw new ArgumentException($"'{path}' is not a ZooKeeper path.", nameof(path));
        }

        return _chroot.Length == 0 ? path : path == "/" ? _chroot : _chroot + path;
    }

    private string Relative(string path) =>
        _chroot.Length == 0 ? path
        : path == _chroot ? "/"
        : path.StartsWith(_chroot + "/", StringComparison.Ordinal) ? path[_chroot.Length..]
        : path;

    private static string ParentOf(string path)
    {
        var slash = path.LastIndexOf('/');
        return slash <= 0 ? "/" : path[..slash];
    }

    private static void WriteCreate(JuteWriter w, string fullPath, ReadOnlySpan<byte> data, CreateMode mode)
    {
        w.WriteString(fullPath);
        w.WriteBuffer(data);
        w.WriteOpenAcl();
        w.WriteInt((int)mode);
    }

    private static void WriteMultiHeader(JuteWriter w, int type)
    {
        w.WriteInt(type);
        w.WriteBool(false);
        w.WriteInt(-1);
    }

    private void AddWatch(Dictionary<string, List<Action<WatchedEvent>>> watches, string path, Action<WatchedEvent> watch)
    {
        lock (_lock)
        {
            if (!watches.TryGetValue(path, out var list))
            {
                watches[path] = list = [];
            }

            list.Add(watch);
        }
    }

    private static ((string Host, int Port)[] Servers, string Chroot) ParseConnectionString(string connectionString)
    {
        var chrootAt = connectionString.IndexOf('/', StringComparison.Ordinal);
        var hosts = chrootAt < 0 ? connectionString : connectionString[..chrootAt];
        var chroot = chrootAt < 0 ? string.Empty : connectionString[chrootAt..].TrimEnd('/');
        var servers = hosts.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(h =>
        {
            var colon = h.LastIndexOf(':');
            return colon > 0 && int.TryParse(h.AsSpan(colon + 1), out var port) && port is > 0 and < 65536
                ? (h[..colon], port)
                : throw new ArgumentException($"'{h}' in the ZooKeeper connection string is not host:port.");
        }).ToArray();
        return servers.Length == 0 ? throw new ArgumentException("The ZooKeeper connection string names no server.") : (servers, chroot);
    }
}
