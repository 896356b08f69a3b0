// CloudFront Function (cloudfront-js-2.0), viewer request of the static site: serve the precompressed
// `.br` / `.gz` variant that deploy.sh uploaded next to each compressible file. CloudFront compresses nothing
// above 10 MB, and the demo's `.wasm` is 12.8 MB, so the variants are made ahead of time at the highest level.
// The cache key carries the normalised Accept-Encoding, so each variant is cached separately.
var COMPRESSIBLE = /\.(wasm|js|mjs|html|css|json|svg|txt)$/;

function handler(event) {
  var request = event.request;
  var uri = request.uri;
  if (uri.charAt(uri.length - 1) === '/') {
    uri = uri + 'index.html';
  }
  if (COMPRESSIBLE.test(uri)) {
    var header = request.headers['accept-encoding'];
    var accepted = header ? header.value.toLowerCase() : '';
    if (/(^|[\s,])br($|[\s,;])/.test(accepted)) {
      uri = uri + '.br';
    } else if (/(^|[\s,])gzip($|[\s,;])/.test(accepted)) {
      uri = uri + '.gz';
    }
  }
  request.uri = uri;
  return request;
}
