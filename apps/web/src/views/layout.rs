//! The page frame: navigation, styles, and the logout form.

use leptos::prelude::*;

use super::csrf_field;

const STYLE: &str = include_str!("style.css");

/// Small progressive enhancements; pages work without them. Copy buttons: through the
/// clipboard where the browser allows it (HTTPS or localhost), else the text is
/// selected for Ctrl+C and the button says so. Danger forms ask before they post.
/// "Re-check all" re-checks key by key, saying how far it got, then shows the same
/// summary the form's own (script-free) answer would.
const SCRIPT: &str = "document.addEventListener('click',function(e){var b=e.target.closest('[data-copy]');\
if(!b)return;var t=document.getElementById(b.dataset.copy);if(!t)return;\
var select=function(){var r=document.createRange();r.selectNodeContents(t);var s=getSelection();\
s.removeAllRanges();s.addRange(r);b.textContent='Selected: press Ctrl+C (no clipboard over plain HTTP)';};\
if(navigator.clipboard&&window.isSecureContext){navigator.clipboard.writeText(t.textContent.trim())\
.then(function(){b.textContent='Copied';},select);}else{select();}});\
document.addEventListener('submit',function(e){var q=e.target.dataset&&e.target.dataset.confirm;\
if(q&&!confirm(q))e.preventDefault();});\
document.addEventListener('submit',async function(e){var f=e.target;if(f.id!=='recheck-all'||!window.fetch)return;\
e.preventDefault();var ids=f.dataset.ids.split(',').filter(Boolean),csrf=f.querySelector('[name=csrf]').value,\
p=document.getElementById('recheck-progress'),b=f.querySelector('button'),n={};b.disabled=true;\
for(var i=0;i<ids.length;i++){p.textContent='Re-checking '+(i+1)+' of '+ids.length+' (key #'+ids[i]+')…';var v;\
try{var r=await fetch('/keys/'+ids[i]+'/recheck',{method:'POST',body:new URLSearchParams({csrf:csrf})});\
var m=new URL(r.url).searchParams.get('msg')||'';v=m==='missing'?'missing':m.replace(/^checked-/,'')||'unreachable';}\
catch(x){v='unreachable';}n[v]=(n[v]||0)+1;}\
location.href='/keys?rechecked='+Object.keys(n).map(function(k){return k+'-'+n[k];}).join('.');});";

/// A whole HTML document. `csrf` is `None` on the login page (no session yet).
pub fn document(title: &str, current: &str, csrf: Option<&str>, body: AnyView) -> String {
    let title = format!("{title} · Gemini Proxy");
    let nav = csrf.map(|csrf| nav(current, csrf));
    let html = view! {
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <title>{title}</title>
                <link rel="icon" href="/favicon.ico" type="image/svg+xml"/>
                <style inner_html=STYLE></style>
            </head>
            <body>
                {nav}
                <main>{body}</main>
                {csrf.is_some().then(|| view! { <footer id="time-rule">{crate::timefmt::TIME_RULE}</footer> })}
                <script inner_html=SCRIPT></script>
                {crate::bundle::loaded().then(|| view! { <script type="module" inner_html=crate::bundle::script()></script> })}
            </body>
        </html>
    };
    format!("<!DOCTYPE html>{}", html.to_html())
}

fn nav(current: &str, csrf: &str) -> AnyView {
    let links = [
        ("/", "Overview"),
        ("/keys", "Upstream keys"),
        ("/proxy-keys", "Proxy keys"),
        ("/logs", "Logs"),
        ("/usage", "Usage"),
    ];
    let items = links
        .into_iter()
        .map(|(href, label)| {
            let class = if href == current { "active" } else { "" };
            view! { <a href=href class=class>{label}</a> }
        })
        .collect_view();
    view! {
        <nav>
            <strong>"Gemini Proxy"</strong>
            {items}
            <form method="post" action="/logout" class="inline logout">
                {csrf_field(csrf)}
                <button type="submit">"Log out"</button>
            </form>
        </nav>
    }
    .into_any()
}
