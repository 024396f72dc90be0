"""The report page's stylesheet and the few lines of page script that record what loaded (see report.py)."""

CSS = """
:root{--fg:#1d2330;--muted:#5b6475;--line:#d9dee7;--bg:#f6f7fa;--accent:#2a5bd7}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);
background:var(--bg)}
header{background:#fff;border-bottom:1px solid var(--line);padding:18px 28px 10px}
header h1{margin:0 0 4px;font-size:24px}
header .meta{color:var(--muted);font-size:13px}
nav{margin-top:8px}
nav a{color:var(--accent);text-decoration:none;margin-right:16px;font-size:14px}
main{padding:8px 28px 40px;max-width:1400px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 18px 16px;margin:18px 0}
section h2{margin:0 0 10px;font-size:19px}
.grid{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
figure{margin:0;max-width:100%}
figure img,figure video{display:block;max-width:100%;min-width:256px;height:auto;
border:1px solid var(--line);border-radius:4px;image-rendering:pixelated;background:#000}
figure.mesh{width:min(520px,100%)}
figcaption{color:var(--muted);font-size:13px;margin-top:4px}
model-viewer{display:block;width:100%;height:360px;border:1px solid var(--line);border-radius:4px;
background:radial-gradient(#fff,#e3e6ec)}
.plots{display:flex;flex-wrap:wrap;gap:12px}
svg.plot{background:#fff;border:1px solid var(--line);border-radius:4px;font-family:inherit}
svg.plot .frame{fill:none;stroke:#8a93a3}
svg.plot .grid{stroke:#eceff4}
svg.plot .tick{font-size:10px;fill:#5b6475}
svg.plot .alabel{font-size:12px;fill:#1d2330}
svg.plot .ptitle{font-size:13px;font-weight:600;fill:#1d2330}
svg.plot .legend{font-size:11px;fill:#1d2330}
.card{margin-bottom:16px}
table{border-collapse:collapse;font-size:14px;margin-bottom:6px}
th,td{border-bottom:1px solid var(--line);padding:4px 12px;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#eef1f6}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;font-size:12px;color:var(--muted);margin:4px 0}
dt{font-weight:600}
dd{margin:0;word-break:break-all}
details summary{cursor:pointer;color:var(--accent)}
pre{background:#f3f4f7;border:1px solid var(--line);border-radius:4px;padding:10px;overflow:auto;font-size:12.5px;
max-height:600px}
.note{color:var(--muted)}
footer{color:var(--muted);font-size:12px;padding:0 28px 24px}
"""

# Runs first (classic script in <head>): collects errors before anything else can fail.
HEAD_SCRIPT = """
window.__errors=[];
(function(){
  function sync(){document.documentElement.setAttribute('data-errors',JSON.stringify(window.__errors));}
  function add(msg){window.__errors.push(String(msg));sync();}
  window.addEventListener('error',function(e){
    var t=e.target;
    if(t&&t!==window&&t.tagName){add('resource failed: <'+t.tagName.toLowerCase()+'> '+(t.title||t.alt||''));}
    else{add('uncaught: '+(e.message||e.error));}
  },true);
  window.addEventListener('unhandledrejection',function(e){add('unhandled rejection: '+(e.reason&&e.reason.message||e.reason));});
  var ce=console.error.bind(console);
  console.error=function(){add('console.error: '+Array.prototype.map.call(arguments,String).join(' '));ce.apply(null,arguments);};
  sync();
})();
"""

# Runs at the end of <body>, before the (deferred) viewer module upgrades the <model-viewer> elements.
BODY_SCRIPT = """
(function(){
  function rects(){document.querySelectorAll('model-viewer').forEach(function(mv){
    var r=mv.getBoundingClientRect();
    mv.setAttribute('data-rect',[r.left+scrollX,r.top+scrollY,r.width,r.height].map(Math.round).join(','));
  });}
  if(window.ResizeObserver){new ResizeObserver(rects).observe(document.body);}
  document.querySelectorAll('model-viewer').forEach(function(mv){
    mv.addEventListener('load',function(){mv.setAttribute('data-loaded','1');rects();});
    mv.addEventListener('error',function(e){
      var d=e.detail||{};mv.setAttribute('data-error',String(d.type||'error'));
      window.__errors.push('model-viewer error: '+(d.type||'')+' '+(d.sourceError||''));
      document.documentElement.setAttribute('data-errors',JSON.stringify(window.__errors));
    });
  });
  document.querySelectorAll('video').forEach(function(v){
    if(v.readyState>=2){v.setAttribute('data-ok','1');}
    v.addEventListener('loadeddata',function(){v.setAttribute('data-ok','1');});
    v.addEventListener('error',function(){v.setAttribute('data-ok','0');});
  });
  document.querySelectorAll('img').forEach(function(im){
    function mark(){im.setAttribute('data-ok',im.naturalWidth>0?'1':'0');}
    if(im.complete){mark();}else{im.addEventListener('load',mark);im.addEventListener('error',mark);}
  });
})();
"""
