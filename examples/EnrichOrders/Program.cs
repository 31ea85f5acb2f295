using EnrichOrders;
using Streams.Client.Serialization;
using Streams.Functions;

// Settings come from appsettings.json, environment variables (Function__Controller=http://...) and the command line
// (--Function:Group=enrich).
var builder = WebApplication.CreateBuilder(args);
builder.AddStreamsFunction<Enrich, string>(Serializers.Utf8);
var app = builder.Build();
app.MapStreamsFunctionEndpoints();
await app.RunAsync();
