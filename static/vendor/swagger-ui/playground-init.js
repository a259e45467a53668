// Starts Swagger UI on /docs (app/api/routes/docs.py). Not part of swagger-ui-dist: a file of its own
// because the site's Content-Security-Policy allows no inline script.
const el = document.getElementById('swagger-ui');
window.ui = SwaggerUIBundle({
  url: el.dataset.openapiUrl,
  dom_id: '#swagger-ui',
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: 'BaseLayout',
  validatorUrl: null,  // the default would send the schema to validator.swagger.io
});
